package provision

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// LoginRequest is the body of POST login/whatsapp.
type LoginRequest struct {
	// Method is FlowQR (default) or FlowPairingCode.
	Method string `json:"method"`
	// Phone is the number a pairing code is for (FlowPairingCode only);
	// it is never echoed.
	Phone string `json:"phone"`
	// Relay logs in the bridge's relay account (admins, QR only).
	Relay bool `json:"relay"`
}

// LoginResponse is the answer of POST login/whatsapp and of a poll.
type LoginResponse struct {
	LoginID string        `json:"login_id"`
	Seq     int           `json:"seq"`
	Step    commands.Step `json:"step"`
	Done    bool          `json:"done"`
}

// LogoutRequest is the body of POST logout/whatsapp.
type LogoutRequest struct {
	Relay bool `json:"relay"`
}

// MessageResponse is an answer that is the bot's text alone.
type MessageResponse struct {
	Message string `json:"message"`
}

func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, c caller) *Error {
	ctx := r.Context()
	var body LoginRequest
	if e := readJSON(w, r, &body); e != nil {
		return e
	}
	text := "login whatsapp"
	switch {
	case body.Method == FlowQR || body.Method == "":
		if body.Phone != "" {
			return errorf(http.StatusBadRequest, CodeBadRequest, "phone is only for method pairing_code")
		}
		if body.Relay {
			text += " relay"
		}
	case body.Method == FlowPairingCode:
		if body.Relay {
			return errorf(http.StatusBadRequest, CodeBadRequest, "the relay account logs in with method qr")
		}
		if oneLine(body.Phone) == "" {
			return errorf(http.StatusBadRequest, CodeBadRequest, "method pairing_code needs phone, the number of the WhatsApp account")
		}
		text += " " + oneLine(body.Phone)
	default:
		return errorf(http.StatusBadRequest, CodeBadRequest, "method must be qr or pairing_code")
	}
	req, e := s.check(ctx, c, text)
	if e != nil {
		return e
	}
	wa := s.opts.WhatsApp
	if wa == nil {
		return errNoNetwork
	}
	account := c.user
	if body.Relay {
		account = wa.RelayAccount()
	}
	sess := s.logins.add(c.user)
	if sess == nil {
		return errTooMany
	}
	step := wa.Login(ctx, account, req.Phone, sess.push)
	if step.Type == commands.StepError {
		s.logins.remove(sess.id)
		st := wa.LoginStatus(account)
		if st.Pending || (st.LoggedIn && st.State != "logged_out") {
			return errorf(http.StatusConflict, CodeConflict, step.Text)
		}
		return errorf(http.StatusUnprocessableEntity, CodeRefused, step.Text)
	}
	sess.first(step)
	writeJSON(w, http.StatusOK, loginAnswer(sess))
	return nil
}

// loginAnswer is a session's newest step as the client sees it.
func loginAnswer(sess *loginSession) LoginResponse {
	seq, step, _ := sess.snapshot()
	step.Text = phone.Redact(step.Text)
	return LoginResponse{LoginID: sess.id, Seq: seq, Step: step, Done: step.Final()}
}

func (s *Server) pollLogin(w http.ResponseWriter, r *http.Request, c caller) *Error {
	sess := s.logins.get(r.PathValue("login"), c.user)
	if sess == nil {
		return errNoLogin
	}
	q := r.URL.Query()
	since, wait := -1, time.Duration(0)
	if v := q.Get("since"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, CodeBadRequest, "since must be a step number (seq)")
		}
		since = n
	}
	if v := q.Get("wait"); v != "" {
		n, err := strconv.ParseFloat(strings.TrimSuffix(v, "s"), 64)
		if err != nil || n < 0 {
			return errorf(http.StatusBadRequest, CodeBadRequest, "wait must be a number of seconds (at most 30)")
		}
		wait = min(time.Duration(n*float64(time.Second)), maxWait)
	}
	if seq, step, ready := sess.snapshot(); since >= 0 && seq <= since && wait > 0 && !step.Final() {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		select {
		case <-ready:
		case <-ctx.Done():
		}
		cancel()
	}
	writeJSON(w, http.StatusOK, loginAnswer(sess))
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, c caller) *Error {
	ctx := r.Context()
	var body LogoutRequest
	if e := readJSON(w, r, &body); e != nil {
		return e
	}
	text := "logout whatsapp"
	if body.Relay {
		text += " relay"
	}
	if _, e := s.check(ctx, c, text); e != nil {
		return e
	}
	if s.opts.WhatsApp == nil {
		return errNoNetwork
	}
	msg, _, e := s.run(ctx, c, text, "")
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, MessageResponse{Message: msg})
	return nil
}
