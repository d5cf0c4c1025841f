package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Code is the status code an error keeps across a hop: a peer's status code
// (InvalidArgument stays InvalidArgument, a deadline stays a deadline), a
// context's end as DeadlineExceeded or Canceled, and otherwise fallback — for a
// failing dependency, Unavailable, which is what a retry can fix.
func Code(err error, fallback codes.Code) codes.Code {
	var se interface{ GRPCStatus() *status.Status }
	switch {
	case errors.As(err, &se):
		return se.GRPCStatus().Code()
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return fallback
}

// Error is err as a status error with Code(err, fallback) and the message
// prefix: what; the peer's message, not its whole status text.
func Error(err error, fallback codes.Code, what string) error {
	msg := err.Error()
	if s, ok := status.FromError(err); ok {
		msg = s.Message()
	}
	return status.Errorf(Code(err, fallback), "%s: %s", what, msg)
}
