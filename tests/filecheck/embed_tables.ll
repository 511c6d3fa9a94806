; RUN: irprune opt %s -p embed-tables --table %t.4=1.5,-2,0,3.25 | filecheck %s
; The table's parameter goes; its values become a constant global of the module.
; CHECK: @irp_table_t = internal addrspace(1) constant [4 x i32] [i32 1069547520, i32 -1073741824, i32 0, i32 1078984704], align 16
; CHECK: define ptx_kernel void @k(ptr noalias %x.4, ptr noalias %y.4)
; CHECK: getelementptr float, ptr addrspacecast (ptr addrspace(1) @irp_table_t to ptr), i64 %i
; CHECK-NOT: %t.4

target datalayout = "e-p:64:64:64-i1:8:8-i8:8:8-i16:16:16-i32:32:32-i64:64:64-i128:128:128-f32:32:32-f64:64:64-v16:16:16-v32:32:32-v64:64:64-v128:128:128-n16:32:64"
target triple = "nvptx64-nvidia-cuda"

define ptx_kernel void @k(ptr noalias %x.4, ptr noalias %t.4, ptr noalias %y.4) {
entry:
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %i = zext i32 %tid to i64
  %tp = getelementptr float, ptr %t.4, i64 %i
  %tv = load float, ptr %tp, align 4
  %xp = getelementptr float, ptr %x.4, i64 %i
  %xv = load float, ptr %xp, align 4
  %p = fmul float %tv, %xv
  %yp = getelementptr float, ptr %y.4, i64 %i
  store float %p, ptr %yp, align 4
  ret void
}

declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()
