package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protoenc "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// A request body that does not parse (garbage bytes, invalid UTF-8 in a string
// field) is the caller's mistake, so it is answered INVALID_ARGUMENT. grpc-go
// (v1.85) answers it Internal, and no interceptor can change that: the codec's
// error is rewrapped as codes.Internal ("grpc: failed to unmarshal the received
// message", rpc_util.go recv, whatever status the codec returned), the
// server stream writes that status itself as soon as RecvMsg fails, and a unary
// handler returns the decode error before calling the interceptors.
//
// So the server's codec (grpc.ForceServerCodecV2) does not fail: it leaves the
// message empty and marked as malformed, and the first interceptor after
// metrics and logging (unary) or the stream wrapper (streams: health Watch,
// reflection) answers a marked message INVALID_ARGUMENT before any handler sees
// it. The mark lives in the message itself, not in a table beside it, so a
// message that is never checked (a client sending a second message on a unary
// call) leaks nothing.

// malformedMark starts the unknown fields of a message the codec could not
// decode, followed by the decoder's error. A message decoded from the wire never
// starts so: the tag byte 0 is field number 0, which every protobuf decoder
// refuses.
const malformedMark = 0x00

// codec is the proto codec of grpc-go with the decode failure deferred to the
// interceptors.
type codec struct{ encoding.CodecV2 }

func newCodec() codec { return codec{encoding.GetCodecV2(protoenc.Name)} }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	proto.Reset(m)
	m.ProtoReflect().SetUnknown(append([]byte{malformedMark}, err.Error()...))
	return nil
}

// malformed is the INVALID_ARGUMENT error of a message the codec marked, or nil.
func malformed(v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return nil
	}
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 || u[0] != malformedMark {
		return nil
	}
	return status.Errorf(codes.InvalidArgument, "malformed request: the body is not a valid %s: %s", m.ProtoReflect().Descriptor().FullName(), u[1:])
}

// refuseMalformed answers a unary call whose request did not parse.
func refuseMalformed(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := malformed(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// checkedStream answers a stream's message that did not parse.
type checkedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s checkedStream) Context() context.Context { return s.ctx }

func (s checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return malformed(m)
}
