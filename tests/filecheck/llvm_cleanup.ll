; RUN: irprune opt %s -p strip-zero-weights,fold-weight-constants,contract-fma,llvm-cleanup --weight-shape 2,2,1,1 --weight-values 1.5,0,-2.25,0.1 | filecheck %s
; LLVM's O3 keeps the fused multiply-adds and the immediates.
; CHECK: load float, ptr %x.4
; CHECK: {{(tail )?}}call float @llvm.fmuladd.f32(float %{{.*}}, float 1.500000e+00, float 0.000000e+00)
; CHECK: {{(tail )?}}call float @llvm.fmuladd.f32(float %{{.*}}, float 0x3FB99999A0000000,
; CHECK-NOT: %w.4

target datalayout = "e-p:64:64:64-i1:8:8-i8:8:8-i16:16:16-i32:32:32-i64:64:64-i128:128:128-f32:32:32-f64:64:64-v16:16:16-v32:32:32-v64:64:64-v128:128:128-n16:32:64"
target triple = "nvptx64-nvidia-cuda"

define ptx_kernel void @k(ptr noalias %x.4, ptr noalias %w.4, ptr noalias %y.4) {
entry:
  %xa = load float, ptr %x.4, align 4
  %xp1 = getelementptr i8, ptr %x.4, i64 4
  %xb = load float, ptr %xp1, align 4
  %w0 = load float, ptr %w.4, align 4
  %m0 = fmul float %xa, %w0
  %s0 = fadd float %m0, 0.000000e+00
  %wp1 = getelementptr i8, ptr %w.4, i64 4
  %w1 = load float, ptr %wp1, align 4
  %m1 = fmul float %xb, %w1
  %s1 = fadd float %s0, %m1
  store float %s1, ptr %y.4, align 4
  %wp2 = getelementptr i8, ptr %w.4, i64 8
  %w2 = load float, ptr %wp2, align 4
  %m2 = fmul float %xa, %w2
  %t0 = fadd float %m2, 0.000000e+00
  %wp3 = getelementptr float, ptr %w.4, i64 3
  %w3 = load float, ptr %wp3, align 4
  %m3 = fmul float %xb, %w3
  %t1 = fadd float %t0, %m3
  %yp1 = getelementptr i8, ptr %y.4, i64 4
  store float %t1, ptr %yp1, align 4
  ret void
}
