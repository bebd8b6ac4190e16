package provision

import (
	"errors"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/safety"
)

// PhoneRequest is the body of start, link and unlink.
type PhoneRequest struct {
	// Phone is the number as people write it; never echoed.
	Phone string `json:"phone"`
}

// StartResponse is the answer of POST start.
type StartResponse struct {
	Message       string `json:"message"`
	RoomID        string `json:"room_id,omitempty"`
	Network       string `json:"network,omitempty"`
	Encrypted     bool   `json:"encrypted"`
	RoomEncrypted bool   `json:"room_encrypted"`
	Native        bool   `json:"native"`
	Existing      bool   `json:"existing"`
	Group         bool   `json:"group"`
	Undeletable   bool   `json:"undeletable"`
}

func (s *Server) start(w http.ResponseWriter, r *http.Request, c caller) *Error {
	var body PhoneRequest
	if e := readJSON(w, r, &body); e != nil {
		return e
	}
	msg, out, e := s.run(r.Context(), c, "start "+oneLine(body.Phone), "")
	if e != nil {
		return e
	}
	res, _ := out.get()
	if res == nil {
		// The start routing records nothing when it is not wrapped
		// (StartRecorder); the answer is all there is.
		zerolog.Ctx(r.Context()).Warn().Msg("Provisioning: start recorded no outcome")
		writeJSON(w, http.StatusOK, StartResponse{Message: msg})
		return nil
	}
	if res.Err != nil {
		return startRefusal(res.Err, msg)
	}
	writeJSON(w, http.StatusOK, StartResponse{
		Message: msg, RoomID: res.Room, Network: res.Network,
		Encrypted: res.Encrypted, RoomEncrypted: res.RoomEncrypted,
		Native: res.Native, Existing: res.Existing, Group: res.Group, Undeletable: res.Undeletable,
	})
	return nil
}

// startRefusal maps why a start failed to an error answer carrying the
// bot's answer.
func startRefusal(err error, msg string) *Error {
	var limit *safety.LimitError
	switch {
	case errors.As(err, &limit):
		e := errorf(http.StatusTooManyRequests, CodeRateLimited, msg)
		e.RetryAfterMS = limit.RetryAfter.Milliseconds()
		return e
	case errors.Is(err, safety.ErrLimited):
		return errorf(http.StatusTooManyRequests, CodeRateLimited, msg)
	case errors.Is(err, safety.ErrSuspended):
		return errorf(http.StatusForbidden, CodeForbidden, msg)
	case errors.Is(err, identity.ErrSMSNotOptedIn):
		return errorf(http.StatusConflict, CodeSMSNotOptedIn, msg)
	}
	return errorf(http.StatusUnprocessableEntity, CodeRefused, msg)
}

// RetentionRequest is the body of PUT conversations/{room}/retention.
type RetentionRequest struct {
	// Retention is 30s|10m|24h|7d|…|off|default, as the bot command takes.
	Retention string `json:"retention"`
}

func (s *Server) retention(w http.ResponseWriter, r *http.Request, c caller) *Error {
	ctx := r.Context()
	room := r.PathValue("room")
	var body RetentionRequest
	if e := readJSON(w, r, &body); e != nil {
		return e
	}
	text := "retention " + oneLine(body.Retention)
	if _, e := s.check(ctx, c, text); e != nil {
		return e
	}
	if s.opts.PortalOwner == nil {
		return errNoPortal
	}
	owner, err := s.opts.PortalOwner(ctx, room)
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Provisioning: could not look up a portal")
		return errInternal
	}
	if owner == "" || owner != c.user {
		return errNoPortal
	}
	msg, out, e := s.run(ctx, c, text, room)
	if e != nil {
		return e
	}
	if _, err = out.get(); err != nil {
		return errorf(http.StatusUnprocessableEntity, CodeRefused, msg)
	}
	writeJSON(w, http.StatusOK, MessageResponse{Message: msg})
	return nil
}
