package provision

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/switchboard-bridge/switchboard/internal/phone"
)

// maxBody bounds a request body.
const maxBody = 64 << 10

// readJSON decodes r's body (at most maxBody, an object, no unknown
// fields, nothing after it) into v. An empty body is {}.
func readJSON(w http.ResponseWriter, r *http.Request, v any) *Error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errTooLarge
	} else if err != nil {
		return errorf(http.StatusBadRequest, CodeBadJSON, "could not read the request body")
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return errorf(http.StatusBadRequest, CodeBadJSON, "the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err = dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, CodeBadJSON, "the request body is not valid JSON for this endpoint: "+jsonProblem(err))
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, CodeBadJSON, "the request body holds more than one JSON value")
	}
	return nil
}

// jsonProblem names what is wrong without echoing the input.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return "syntax error"
	case errors.As(err, &typ):
		return "field " + typ.Field + " has the wrong type"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end"
	}
	// Unknown fields: encoding/json names the field, which is the
	// client's own key, not a value.
	return err.Error()
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers an error. Its message passes through the bot's
// phone number redaction, whatever produced it.
func writeError(w http.ResponseWriter, e *Error) {
	out := *e
	out.Message = phone.Redact(out.Message)
	writeJSON(w, out.Status, &out)
}
