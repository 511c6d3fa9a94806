; RUN: irprune opt %s -p decompose-rem | filecheck %s
; A remainder whose quotient comes earlier in its block is computed from it; a remainder with
; no quotient of its own, or in another block, stays a remainder.
; CHECK-LABEL: entry:
; CHECK: %q = udiv i64 %p, 3136
; CHECK-NEXT: %r.quotient.mul = mul i64 %q, 3136
; CHECK-NEXT: %r = sub i64 %p, %r.quotient.mul
; CHECK-NEXT: %r2 = urem i64 %p, 56
; CHECK-LABEL: next:
; CHECK-NEXT: %r3 = urem i64 %p, 3136

target triple = "nvptx64-nvidia-cuda"

define ptx_kernel void @k(i64 %p, ptr noalias %y.4) {
entry:
  %q = udiv i64 %p, 3136
  %r = urem i64 %p, 3136
  %r2 = urem i64 %p, 56
  br label %next

next:
  %r3 = urem i64 %p, 3136
  %s = add i64 %q, %r
  %s2 = add i64 %s, %r2
  %s3 = add i64 %s2, %r3
  store i64 %s3, ptr %y.4, align 8
  ret void
}
