; RUN: irprune opt %s -p grid-dependency-wait | filecheck %s
; RUN: irprune opt %s -p grid-dependency-wait,grid-dependency-wait | filecheck %s
; RUN: irprune opt %s -p grid-dependency-wait --cpu sm_80 | filecheck %s --check-prefix=OLD
; The wait comes first in the kernel's entry block, before the first load; a device function
; gets none (it runs after its kernel's wait); running the pass again adds no second wait.
; Below sm_90 there is no griddepcontrol: the module is left as it was.
; CHECK-LABEL: define void @helper(
; CHECK-NOT: griddepcontrol
; CHECK-LABEL: define ptx_kernel void @k(
; CHECK-NEXT: entry:
; CHECK-NEXT: call void @llvm.nvvm.griddepcontrol.wait()
; CHECK-NEXT: %v = load float, ptr %x.4
; CHECK-NOT: call void @llvm.nvvm.griddepcontrol.wait
; CHECK: declare void @llvm.nvvm.griddepcontrol.wait()
; OLD-NOT: griddepcontrol

target triple = "nvptx64-nvidia-cuda"

define void @helper(ptr %y.4, float %v) {
  store float %v, ptr %y.4, align 4
  ret void
}

define ptx_kernel void @k(ptr noalias readonly %x.4, ptr noalias %y.4) {
entry:
  %v = load float, ptr %x.4, align 4
  %w = fmul float %v, 2.0
  call void @helper(ptr %y.4, float %w)
  ret void
}
