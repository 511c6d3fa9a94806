; RUN: irprune opt %s -p async-copy | filecheck %s
; Global-to-shared copies (4, 8 and 16 bytes) become cp.async; a 16-byte copy aligned on only
; 8 bytes stays as it was; a wait goes before the barrier; the shared-to-shared copy stays a
; load and a store.
; CHECK: call void @llvm.nvvm.cp.async.ca.shared.global.4(ptr addrspace(3) %{{.*}}, ptr addrspace(1) %{{.*}})
; CHECK: call void @llvm.nvvm.cp.async.ca.shared.global.8(ptr addrspace(3) %{{.*}}, ptr addrspace(1) %{{.*}})
; CHECK: call void @llvm.nvvm.cp.async.ca.shared.global.16(ptr addrspace(3) %{{.*}}, ptr addrspace(1) %{{.*}})
; CHECK: %half = load i128, ptr %xp, align 8
; CHECK-NEXT: store i128 %half
; CHECK: %again = load float
; CHECK: store float %again
; CHECK: call void @llvm.nvvm.cp.async.wait.all()
; CHECK-NEXT: call void @llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)
; CHECK-NOT: call void @llvm.nvvm.cp.async.ca

target datalayout = "e-p:64:64:64-i1:8:8-i8:8:8-i16:16:16-i32:32:32-i64:64:64-i128:128:128-f32:32:32-f64:64:64-v16:16:16-v32:32:32-v64:64:64-v128:128:128-n16:32:64"
target triple = "nvptx64-nvidia-cuda"

@s = external addrspace(3) global [0 x float], align 4

define ptx_kernel void @k(ptr noalias %x.4, ptr noalias %t.4, ptr noalias %y.4) {
entry:
  %tid = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %i = zext i32 %tid to i64
  %tp = getelementptr float, ptr %t.4, i64 %i
  %tv = load float, ptr %tp, align 4
  %sp = getelementptr float, ptr addrspacecast (ptr addrspace(3) @s to ptr), i64 %i
  store float %tv, ptr %sp, align 4
  %j = add i64 %i, 64
  %xp = getelementptr float, ptr %x.4, i64 %i
  %xv = load i64, ptr %xp, align 8
  %sq = getelementptr float, ptr addrspacecast (ptr addrspace(3) @s to ptr), i64 %j
  store i64 %xv, ptr %sq, align 8
  %xw = load i128, ptr %xp, align 16
  store i128 %xw, ptr %sq, align 16
  %half = load i128, ptr %xp, align 8
  store i128 %half, ptr %sq, align 8
  %again = load float, ptr %sp, align 4
  %sr = getelementptr float, ptr addrspacecast (ptr addrspace(3) @s to ptr), i64 200
  store float %again, ptr %sr, align 4
  call void @llvm.nvvm.barrier.cta.sync.aligned.all(i32 0)
  %k = add i64 %i, 1
  %a = getelementptr float, ptr addrspacecast (ptr addrspace(3) @s to ptr), i64 %k
  %av = load float, ptr %a, align 4
  %yp = getelementptr float, ptr %y.4, i64 %i
  store float %av, ptr %yp, align 4
  ret void
}

declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()
declare void @llvm.nvvm.barrier.cta.sync.aligned.all(i32)
