package prism_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-bridge/switchboard/internal/testutil/prism"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "0123456789abcdef0123456789abcdef"
)

func TestTwilioMessagesContract(t *testing.T) {
	mock := prism.Start(t, prism.SpecPath(t))
	messagesURL := mock.URL + "/2010-04-01/Accounts/" + accountSID + "/Messages.json"

	for _, tc := range []struct {
		name       string
		url        string
		form       url.Values
		auth       bool
		json       bool
		wantStatus int
	}{
		{
			name:       "valid message",
			url:        messagesURL,
			form:       url.Values{"To": {"+15005550006"}, "From": {"+15005550001"}, "Body": {"hello from switchboard"}},
			auth:       true,
			wantStatus: http.StatusCreated,
		},
		{
			name:       "media URL accepted as a string",
			url:        messagesURL,
			form:       url.Values{"To": {"+15005550006"}, "From": {"+15005550001"}, "MediaUrl": {"https://example.org/a.png"}},
			auth:       true,
			wantStatus: http.StatusCreated,
		},
		{
			name:       "missing To",
			url:        messagesURL,
			form:       url.Values{"From": {"+15005550001"}, "Body": {"hello"}},
			auth:       true,
			wantStatus: http.StatusUnprocessableEntity,
		},
		{
			name:       "no basic auth",
			url:        messagesURL,
			form:       url.Values{"To": {"+15005550006"}, "From": {"+15005550001"}, "Body": {"hello"}},
			wantStatus: http.StatusUnauthorized,
		},
		{
			name:       "malformed account SID",
			url:        mock.URL + "/2010-04-01/Accounts/not-a-sid/Messages.json",
			form:       url.Values{"To": {"+15005550006"}, "From": {"+15005550001"}, "Body": {"hello"}},
			auth:       true,
			wantStatus: http.StatusUnprocessableEntity,
		},
		{
			name:       "JSON body",
			url:        messagesURL,
			form:       url.Values{"To": {"+15005550006"}, "From": {"+15005550001"}, "Body": {"hello"}},
			auth:       true,
			json:       true,
			wantStatus: http.StatusUnsupportedMediaType,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, contentType := tc.form.Encode(), "application/x-www-form-urlencoded"
			if tc.json {
				flat := map[string]string{}
				for k := range tc.form {
					flat[k] = tc.form.Get(k)
				}
				data, _ := json.Marshal(flat)
				body, contentType = string(data), "application/json"
			}
			req, err := http.NewRequest(http.MethodPost, tc.url, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", contentType)
			if tc.auth {
				req.SetBasicAuth(accountSID, authToken)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body: %s", resp.StatusCode, tc.wantStatus, data)
			}
			if resp.StatusCode != http.StatusCreated {
				return
			}
			// The 201 body is the spec's example message resource.
			var msg struct {
				SID    string `json:"sid"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(data, &msg); err != nil {
				t.Fatalf("decode 201 body: %v: %s", err, data)
			}
			if !strings.HasPrefix(msg.SID, "SM") && !strings.HasPrefix(msg.SID, "MM") {
				t.Errorf("message sid %q, want an SM/MM sid", msg.SID)
			}
		})
	}
}
