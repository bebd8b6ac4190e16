package provision

import (
	"net/http"
	"strings"
)

// VerifyRequest is the body of POST verify.
type VerifyRequest struct {
	Code string `json:"code"`
}

// LinksResponse is the answer of verify and unlink: the bot's answer and
// the linked numbers after it.
type LinksResponse struct {
	Message string     `json:"message"`
	Linked  *bool      `json:"linked,omitempty"`
	Links   []LinkInfo `json:"links"`
}

func (s *Server) link(w http.ResponseWriter, r *http.Request, c caller) *Error {
	var body PhoneRequest
	if e := readJSON(w, r, &body); e != nil {
		return e
	}
	msg, _, e := s.run(r.Context(), c, "link "+oneLine(body.Phone), "")
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, MessageResponse{Message: msg})
	return nil
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, c caller) *Error {
	var body VerifyRequest
	if e := readJSON(w, r, &body); e != nil {
		return e
	}
	text := "verify " + oneLine(body.Code)
	if _, e := s.check(r.Context(), c, text); e != nil {
		return e
	}
	_, before, e := s.prefsAndLinks(r, c)
	if e != nil {
		return e
	}
	msg, _, e := s.run(r.Context(), c, text, "")
	if e != nil {
		return e
	}
	_, after, e := s.prefsAndLinks(r, c)
	if e != nil {
		return e
	}
	linked := len(after) > len(before)
	writeJSON(w, http.StatusOK, LinksResponse{Message: msg, Linked: &linked, Links: after})
	return nil
}

func (s *Server) unlink(w http.ResponseWriter, r *http.Request, c caller) *Error {
	var body PhoneRequest
	if e := readJSON(w, r, &body); e != nil {
		return e
	}
	msg, _, e := s.run(r.Context(), c, "unlink "+oneLine(body.Phone), "")
	if e != nil {
		return e
	}
	_, links, e := s.prefsAndLinks(r, c)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, LinksResponse{Message: msg, Links: links})
	return nil
}

// PreferencesRequest is the body of PUT preferences: any subset.
type PreferencesRequest struct {
	SMS    *bool   `json:"sms"`
	Reveal *bool   `json:"reveal"`
	Prefer *string `json:"prefer"`
}

// PreferencesResponse is the answer of PUT preferences.
type PreferencesResponse struct {
	Preferences PreferencesInfo `json:"preferences"`
	Messages    []string        `json:"messages"`
}

func (s *Server) getPreferences(w http.ResponseWriter, r *http.Request, c caller) *Error {
	if _, e := s.check(r.Context(), c, "links"); e != nil {
		return e
	}
	prefs, _, e := s.prefsAndLinks(r, c)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, prefs)
	return nil
}

func (s *Server) putPreferences(w http.ResponseWriter, r *http.Request, c caller) *Error {
	ctx := r.Context()
	var body PreferencesRequest
	if e := readJSON(w, r, &body); e != nil {
		return e
	}
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	var texts []string
	if body.SMS != nil {
		texts = append(texts, "sms "+onOff(*body.SMS))
	}
	if body.Reveal != nil {
		texts = append(texts, "reveal "+onOff(*body.Reveal))
	}
	if body.Prefer != nil {
		p := strings.ToLower(strings.TrimSpace(*body.Prefer))
		if strings.ContainsAny(p, " \t\r\n") || p == "" {
			return errorf(http.StatusBadRequest, CodeBadRequest, "prefer must be matrix, whatsapp or sms")
		}
		texts = append(texts, "prefer "+p)
	}
	if len(texts) == 0 {
		return errorf(http.StatusBadRequest, CodeBadRequest, "give at least one of sms, reveal and prefer")
	}
	// Every setting is checked before any is changed.
	for _, text := range texts {
		if _, e := s.check(ctx, c, text); e != nil {
			return e
		}
	}
	msgs := []string{}
	for _, text := range texts {
		msg, _, e := s.run(ctx, c, text, "")
		if e != nil {
			return e
		}
		msgs = append(msgs, msg)
	}
	prefs, _, e := s.prefsAndLinks(r, c)
	if e != nil {
		return e
	}
	writeJSON(w, http.StatusOK, PreferencesResponse{Preferences: prefs, Messages: msgs})
	return nil
}
