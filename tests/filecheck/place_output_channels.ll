; RUN: irprune opt %s -p place-output-channels --output-channels 2,0,1 --output-stride 16 | filecheck %s
; The module computes the layer's channels 2, 0, 1 in that order (one region): the store of
; its channel j moves by (order[j] - j) channels of 16 bytes; channel 2's by none.
; CHECK: define ptx_kernel void @k(ptr noalias %x.4, ptr noalias %y.4)
; CHECK: %irp.oc0.{{[0-9]+}} = getelementptr i8, ptr %y.4, i64 32
; CHECK-NEXT: store float %a, ptr %irp.oc0.{{[0-9]+}}, align 4
; CHECK: %irp.oc0.{{[0-9]+}} = getelementptr i8, ptr %y1, i64 -16
; CHECK-NEXT: store float %b, ptr %irp.oc0.{{[0-9]+}}, align 4
; CHECK: %irp.oc0.{{[0-9]+}} = getelementptr i8, ptr %y2, i64 -16
; CHECK-NEXT: store float %c, ptr %irp.oc0.{{[0-9]+}}, align 4
; CHECK-NOT: getelementptr i8, ptr %x.4
; CHECK: ret void

target datalayout = "e-p:64:64:64-i1:8:8-i8:8:8-i16:16:16-i32:32:32-i64:64:64-i128:128:128-f32:32:32-f64:64:64-v16:16:16-v32:32:32-v64:64:64-v128:128:128-n16:32:64"
target triple = "nvptx64-nvidia-cuda"

define ptx_kernel void @k(ptr noalias %x.4, ptr noalias %y.4) {
entry:
  %a = load float, ptr %x.4, align 4
  %xp = getelementptr i8, ptr %x.4, i64 4
  %b = load float, ptr %xp, align 4
  %c = fadd float %a, %b
  store float %a, ptr %y.4, align 4
  %y1 = getelementptr i8, ptr %y.4, i64 16
  store float %b, ptr %y1, align 4
  %y2 = getelementptr float, ptr %y.4, i64 8
  store float %c, ptr %y2, align 4
  ret void
}
