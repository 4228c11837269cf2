; ModuleID = 'tiny'
source_filename = "tiny"

@tiny_metadata_json = internal unnamed_addr constant [272 x i8] c"{\22categories\22: [\22a\22, \22b\22, \22c\22, \22d\22, \22e\22, \22f\22, \22g\22, \22h\22, \22i\22, \22j\22, \22k\22, \22l\22, \22m\22, \22n\22, \22o\22, \22p\22, \22q\22, \22r\22, \22s\22, \22t\22, \22u\22, \22v\22, \22w\22, \22x\22, \22y\22, \22z\22, \22A\22, \22B\22, \22C\22, \22D\22, \22E\22, \22F\22], \22input_size\22: 32, \22module\22: \22tiny\22, \22output_size\22: 32, \22stages\22: [\22classifier\22], \22version\22: 1}\00", align 1

declare void @llvm.memcpy.p0.p0.i32(ptr, ptr, i32, i1)
declare void @llvm.memset.p0.i32(ptr, i8, i32, i1)

define internal void @k0_1_scale(ptr noalias %in0, ptr noalias %out) #1 {
entry:
  br label %L.head
L.head:
  %i1 = phi i32 [ 0, %entry ], [ %i2, %L.latch ]
  %c3 = icmp slt i32 %i1, 32
  br i1 %c3, label %L.body, label %L.done
L.body:
  %p4 = getelementptr inbounds float, ptr %in0, i32 %i1
  %v5 = load float, ptr %p4, align 4
  %f6 = fmul nsz arcp contract float %v5, 0x4004000000000000
  %p7 = getelementptr inbounds float, ptr %out, i32 %i1
  store float %f6, ptr %p7, align 4
  br label %L.latch
L.latch:
  %i2 = add nsw i32 %i1, 1
  br label %L.head, !llvm.loop !1
L.done:
  ret void
}

define internal void @k0_2_softmax(ptr noalias %in0, ptr noalias %out, ptr noalias %r_acc) #1 {
entry:
  %p1 = getelementptr inbounds float, ptr %r_acc, i32 1
  br label %row.head
row.head:
  %i2 = phi i32 [ 0, %entry ], [ %i3, %row.latch ]
  %c4 = icmp slt i32 %i2, 1
  br i1 %c4, label %row.body, label %row.done
row.body:
  %i5 = mul i32 %i2, 32
  %p6 = getelementptr inbounds float, ptr %in0, i32 %i5
  %p7 = getelementptr inbounds float, ptr %out, i32 %i5
  %v8 = load float, ptr %p6, align 4
  store float %v8, ptr %r_acc, align 4
  br label %max.head
max.head:
  %i9 = phi i32 [ 1, %row.body ], [ %i10, %max.latch ]
  %c11 = icmp slt i32 %i9, 32
  br i1 %c11, label %max.body, label %max.done
max.body:
  %p12 = getelementptr inbounds float, ptr %p6, i32 %i9
  %v13 = load float, ptr %p12, align 4
  %v14 = load float, ptr %r_acc, align 4
  %c15 = fcmp ogt float %v13, %v14
  %s16 = select i1 %c15, float %v13, float %v14
  store float %s16, ptr %r_acc, align 4
  br label %max.latch
max.latch:
  %i10 = add nsw i32 %i9, 1
  br label %max.head
max.done:
  %v17 = load float, ptr %r_acc, align 4
  store float 0x0000000000000000, ptr %p1, align 4
  br label %exp.head
exp.head:
  %i18 = phi i32 [ 0, %max.done ], [ %i19, %exp.latch ]
  %c20 = icmp slt i32 %i18, 32
  br i1 %c20, label %exp.body, label %exp.done
exp.body:
  %p21 = getelementptr inbounds float, ptr %p6, i32 %i18
  %v22 = load float, ptr %p21, align 4
  %f23 = fsub nsz arcp contract float %v22, %v17
  %r24 = call float @kws_expf(float %f23)
  %p25 = getelementptr inbounds float, ptr %p7, i32 %i18
  store float %r24, ptr %p25, align 4
  %v26 = load float, ptr %p1, align 4
  %f27 = fadd reassoc nsz arcp contract float %v26, %r24
  store float %f27, ptr %p1, align 4
  br label %exp.latch
exp.latch:
  %i19 = add nsw i32 %i18, 1
  br label %exp.head, !llvm.loop !2
exp.done:
  %v28 = load float, ptr %p1, align 4
  br label %norm.head
norm.head:
  %i29 = phi i32 [ 0, %exp.done ], [ %i30, %norm.latch ]
  %c31 = icmp slt i32 %i29, 32
  br i1 %c31, label %norm.body, label %norm.done
norm.body:
  %p32 = getelementptr inbounds float, ptr %p7, i32 %i29
  %v33 = load float, ptr %p32, align 4
  %f34 = fdiv float %v33, %v28
  %p35 = getelementptr inbounds float, ptr %p7, i32 %i29
  store float %f34, ptr %p35, align 4
  br label %norm.latch
norm.latch:
  %i30 = add nsw i32 %i29, 1
  br label %norm.head, !llvm.loop !3
norm.done:
  br label %row.latch
row.latch:
  %i3 = add nsw i32 %i2, 1
  br label %row.head
row.done:
  ret void
}

define internal float @kws_expf(float %x) #1 {
entry:
  %c1 = fcmp ogt float %x, 0x40562E4300000000
  %s2 = select i1 %c1, float 0x40562E4300000000, float %x
  %c3 = fcmp olt float %s2, 0xC059FE36A0000000
  %s4 = select i1 %c3, float 0xC059FE36A0000000, float %s2
  %f5 = fmul float %s4, 0x3FF7154760000000
  %f6 = fadd float %f5, 0x4168000000000000
  %f7 = fsub float %f6, 0x4168000000000000
  %f8 = fmul float %f7, 0x3FE6300000000000
  %f9 = fsub float %s4, %f8
  %f10 = fmul float %f7, 0xBF2BD01060000000
  %f11 = fsub float %f9, %f10
  %f12 = fmul float 0x3F2A0D2CE0000000, %f11
  %f13 = fadd float %f12, 0x3F56E879C0000000
  %f14 = fmul float %f13, %f11
  %f15 = fadd float %f14, 0x3F81112100000000
  %f16 = fmul float %f15, %f11
  %f17 = fadd float %f16, 0x3FA5553820000000
  %f18 = fmul float %f17, %f11
  %f19 = fadd float %f18, 0x3FC5555540000000
  %f20 = fmul float %f19, %f11
  %f21 = fadd float %f20, 0x3FE0000000000000
  %f22 = fmul float %f11, %f11
  %f23 = fmul float %f21, %f22
  %f24 = fadd float %f23, %f11
  %f25 = fadd float %f24, 0x3FF0000000000000
  %t26 = fptosi float %f7 to i32
  %i27 = ashr i32 %t26, 1
  %i28 = sub i32 %t26, %i27
  %i29 = add i32 %i27, 127
  %i30 = shl i32 %i29, 23
  %t31 = bitcast i32 %i30 to float
  %f32 = fmul float %f25, %t31
  %i33 = add i32 %i28, 127
  %i34 = shl i32 %i33, 23
  %t35 = bitcast i32 %i34 to float
  %f36 = fmul float %f32, %t35
  %s37 = select i1 %c1, float 0x7FF0000000000000, float %f36
  %c38 = fcmp uno float %x, %x
  %s39 = select i1 %c38, float %x, float %s37
  ret float %s39
}

define internal void @tiny_step(ptr noalias %ctx, ptr noalias readonly %in, ptr noalias %out) #0 {
entry:
  call void @k0_1_scale(ptr %in, ptr %ctx)
  %b1 = getelementptr inbounds i8, ptr %ctx, i32 128
  %b2 = getelementptr inbounds i8, ptr %ctx, i32 256
  call void @k0_2_softmax(ptr %ctx, ptr %b1, ptr %b2)
  call void @llvm.memcpy.p0.p0.i32(ptr align 4 %out, ptr align 4 %b1, i32 128, i1 false)
  ret void
}

define i32 @tiny_context_size() #0 {
entry:
  ret i32 320
}

define i32 @tiny_input_size() #0 {
entry:
  ret i32 32
}

define i32 @tiny_output_size() #0 {
entry:
  ret i32 32
}

define ptr @tiny_metadata() #0 {
entry:
  ret ptr @tiny_metadata_json
}

define void @tiny_reset(ptr %ctx) #0 {
entry:
  call void @llvm.memset.p0.i32(ptr align 4 %ctx, i8 0, i32 320, i1 false)
  ret void
}

define void @tiny_predict(ptr %ctx, ptr %in, ptr %out) #0 {
entry:
  call void @tiny_step(ptr %ctx, ptr %in, ptr %out)
  ret void
}

define void @tiny_predict_frames(ptr %ctx, ptr %in, ptr %out, i32 %n) #0 {
entry:
  br label %frames.head
frames.head:
  %i1 = phi i32 [ 0, %entry ], [ %i2, %frames.latch ]
  %c3 = icmp slt i32 %i1, %n
  br i1 %c3, label %frames.body, label %frames.done
frames.body:
  %i4 = mul i32 %i1, 32
  %i5 = mul i32 %i1, 32
  %p6 = getelementptr inbounds float, ptr %in, i32 %i4
  %p7 = getelementptr inbounds float, ptr %out, i32 %i5
  call void @tiny_step(ptr %ctx, ptr %p6, ptr %p7)
  br label %frames.latch
frames.latch:
  %i2 = add nsw i32 %i1, 1
  br label %frames.head
frames.done:
  ret void
}

attributes #0 = { nounwind }
attributes #1 = { nounwind alwaysinline }
!0 = !{!"llvm.loop.vectorize.enable", i1 true}
!1 = distinct !{!1, !0}
!2 = distinct !{!2, !0}
!3 = distinct !{!3, !0}
