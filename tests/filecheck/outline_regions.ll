; RUN: irprune opt %s -p "outline-regions{instructions=12}" | filecheck %s
; RUN: irprune opt %s -p outline-regions | filecheck %s --check-prefix=SMALL
; Four regions of 5-7 instructions (their blocks and the return block they share), 22 in
; all, at most 12 a function: two functions of two regions each. The kernel keeps the group switch, each case a call; each function switches
; again over its own groups, holds its regions' blocks (the shared return block in both) and
; ends the thread where the kernel returned.
; CHECK: ; Function Attrs: nounwind
; CHECK-NEXT: define ptx_kernel void @k(ptr noalias %y.4, i64 %n)
; CHECK: switch i32 %irp.group, label %irp.outside [
; CHECK-NEXT: i32 0, label %irp.call0
; CHECK-NEXT: i32 1, label %irp.call0
; CHECK-NEXT: i32 2, label %irp.call1
; CHECK-NEXT: i32 3, label %irp.call1
; CHECK: irp.call0:
; CHECK-NEXT: call void @k_groups_0_1(ptr %y.4, i64 %n)
; CHECK-NEXT: ret void
; CHECK: irp.call1:
; CHECK-NEXT: call void @k_groups_2_3(ptr %y.4, i64 %n)
; CHECK: ; Function Attrs: noinline noreturn nounwind
; CHECK-NEXT: define internal void @k_groups_0_1(ptr noalias %y.4, i64 %n)
; CHECK: switch i32 %irp.group, label %irp.outside [
; CHECK-NEXT: i32 0, label %entry
; CHECK-NEXT: i32 1, label %rg1.entry
; CHECK-NEXT: ]
; CHECK: irp.outside:
; CHECK-NEXT: call void @llvm.nvvm.exit()
; CHECK-NEXT: unreachable
; CHECK: common.ret:
; CHECK-NEXT: call void @llvm.nvvm.exit()
; CHECK-NEXT: unreachable
; CHECK: entry:
; CHECK: rg1.entry:
; CHECK-NOT: rg2.entry
; CHECK-LABEL: define internal void @k_groups_2_3(
; CHECK: common.ret:
; CHECK: rg2.entry:
; CHECK: rg3.entry:
; CHECK-NEXT: call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
; CHECK: store float 4.000000e+00
; CHECK-NEXT: call void @llvm.nvvm.exit()
; CHECK-NEXT: unreachable
; Under the default size the kernel stays one function.
; SMALL-NOT: define internal
; SMALL: switch i32 %irp.group, label %common.ret [
; SMALL-NOT: define internal

target triple = "nvptx64-nvidia-cuda"

define ptx_kernel void @k(ptr noalias %y.4, i64 %n) #0 {
irp.dispatch:
  %irp.group.block = tail call i32 @llvm.nvvm.read.ptx.sreg.ctaid.y()
  %irp.group.count = tail call i32 @llvm.nvvm.read.ptx.sreg.ntid.z()
  %irp.group.lane = tail call i32 @llvm.nvvm.read.ptx.sreg.tid.z()
  %irp.group.first = mul i32 %irp.group.block, %irp.group.count
  %irp.group = add i32 %irp.group.first, %irp.group.lane
  switch i32 %irp.group, label %common.ret [
    i32 0, label %entry
    i32 1, label %rg1.entry
    i32 2, label %rg2.entry
    i32 3, label %rg3.entry
  ]

common.ret:
  ret void

entry:
  %t = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %p = getelementptr float, ptr %y.4, i32 %t
  store float 1.0, ptr %p, align 4
  br label %common.ret

rg1.entry:
  %rg1.t = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %rg1.c = icmp ult i32 %rg1.t, 7
  br i1 %rg1.c, label %rg1.store, label %common.ret

rg1.store:
  %rg1.p = getelementptr float, ptr %y.4, i32 %rg1.t
  store float 2.0, ptr %rg1.p, align 4
  br label %common.ret

rg2.entry:
  %rg2.t = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %rg2.p = getelementptr float, ptr %y.4, i32 %rg2.t
  store float 3.0, ptr %rg2.p, align 4
  br label %common.ret

rg3.entry:
  %rg3.t = call i32 @llvm.nvvm.read.ptx.sreg.tid.x()
  %rg3.p = getelementptr float, ptr %y.4, i32 %rg3.t
  store float 4.0, ptr %rg3.p, align 4
  ret void
}

declare i32 @llvm.nvvm.read.ptx.sreg.ctaid.y()
declare i32 @llvm.nvvm.read.ptx.sreg.ntid.z()
declare i32 @llvm.nvvm.read.ptx.sreg.tid.z()
declare i32 @llvm.nvvm.read.ptx.sreg.tid.x()

attributes #0 = { mustprogress nounwind willreturn }
