package sms_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twilio/twilio-go/client"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/connectors/sms"
)

func TestSegments(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		enc  sms.Encoding
		n    int
	}{
		{"empty", "", sms.GSM7, 1},
		{"short ascii", "hello", sms.GSM7, 1},
		{"160 gsm", strings.Repeat("a", 160), sms.GSM7, 1},
		{"161 gsm", strings.Repeat("a", 161), sms.GSM7, 2},
		{"306 gsm", strings.Repeat("a", 306), sms.GSM7, 2},
		{"307 gsm", strings.Repeat("a", 307), sms.GSM7, 3},
		{"gsm accents", "àéèùìòÇØÅ£¥§¿¡ÄÖÑÜäöñü", sms.GSM7, 1},
		{"extension chars take two", strings.Repeat("€", 80), sms.GSM7, 1},
		{"extension chars over", strings.Repeat("€", 81), sms.GSM7, 2},
		{"extension not split", strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152), sms.GSM7, 3},
		{"one ucs2 char", "hello ☺", sms.UCS2, 1},
		{"70 ucs2", strings.Repeat("я", 70), sms.UCS2, 1},
		{"71 ucs2", strings.Repeat("я", 71), sms.UCS2, 2},
		{"134 ucs2", strings.Repeat("я", 134), sms.UCS2, 2},
		{"135 ucs2", strings.Repeat("я", 135), sms.UCS2, 3},
		{"emoji is two units", strings.Repeat("😀", 35), sms.UCS2, 1},
		{"emoji over", strings.Repeat("😀", 36), sms.UCS2, 2},
		{"surrogate not split", strings.Repeat("a", 66) + "😀" + strings.Repeat("a", 66), sms.UCS2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, n := sms.Segments(tc.body)
			assert.Equal(t, tc.enc, enc)
			assert.Equal(t, tc.n, n)
		})
	}
}

func TestSplitBody(t *testing.T) {
	word := strings.Repeat("x", 9) + " " // 10 chars
	for _, tc := range []struct {
		name  string
		body  string
		limit int
		want  []string
	}{
		{"empty", "", 1600, []string{""}},
		{"fits", "hello world", 1600, []string{"hello world"}},
		{"exactly at limit", strings.Repeat("a", 1600), 1600, []string{strings.Repeat("a", 1600)}},
		{"splits at space", "aaaa bbbb cccc", 10, []string{"aaaa bbbb", "cccc"}},
		{"no space hard split", "abcdefghijkl", 5, []string{"abcde", "fghij", "kl"}},
		{"newline boundary", "line one\nline two", 12, []string{"line one", "line two"}},
		{"space in first half ignored", "a bcdefghijklmnop", 10, []string{"a bcdefghi", "jklmnop"}},
		{"emoji counts two", strings.Repeat("😀", 3), 4, []string{"😀😀", "😀"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, sms.SplitBody(tc.body, tc.limit))
		})
	}
	t.Run("long text", func(t *testing.T) {
		body := strings.Repeat(word, 500) // 5000 chars
		parts := sms.SplitBody(body, sms.MaxBodyLength)
		require.Len(t, parts, 4)
		for i, p := range parts {
			assert.LessOrEqual(t, len(utf16.Encode([]rune(p))), sms.MaxBodyLength)
			assert.NotEqual(t, ' ', rune(p[0]))
			if i < len(parts)-1 {
				assert.True(t, strings.HasSuffix(p, "x"), "part ends at a word boundary")
			}
		}
		assert.Equal(t, strings.Fields(body), strings.Fields(strings.Join(parts, " ")))
	})
}

func TestClassify(t *testing.T) {
	rest := func(status, code int) error {
		return &client.TwilioRestError{Status: status, Code: code, Message: "to +14155550100"}
	}
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
		optedOut  bool
		invalid   bool
		retryIn   time.Duration
	}{
		{"unsubscribed", rest(400, 21610), true, true, false, 0},
		{"invalid To", rest(400, 21211), true, false, true, 0},
		{"not mobile", rest(400, 21614), true, false, true, 0},
		{"other 4xx", rest(400, 21606), true, false, false, 0},
		{"bad credentials", rest(401, 20003), true, false, false, 0},
		{"429", rest(429, 20429), false, false, false, 5 * time.Second},
		{"500", rest(500, 0), false, false, false, 0},
		{"503", rest(503, 20500), false, false, false, 0},
		{"v1 error 429", &client.RestErrorV1{HttpStatusCode: 429, Code: 20429}, false, false, false, 5 * time.Second},
		{"network", errors.New("dial tcp: connection refused"), false, false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sms.Classify(tc.err, 0)
			require.Error(t, err)
			assert.Equal(t, tc.permanent, errors.Is(err, bridge.ErrPermanent), "permanent")
			assert.Equal(t, tc.optedOut, errors.Is(err, sms.ErrOptedOut), "opted out")
			assert.Equal(t, tc.invalid, errors.Is(err, sms.ErrInvalidNumber), "invalid number")
			var ra *bridge.RetryAfterError
			if tc.retryIn > 0 {
				require.ErrorAs(t, err, &ra)
				assert.Equal(t, tc.retryIn, ra.After)
				assert.ErrorIs(t, err, bridge.ErrPaced, "a 429 waits without using up an attempt")
				assert.ErrorIs(t, err, sms.ErrThrottled)
			} else {
				assert.NotErrorIs(t, err, bridge.ErrPaced)
				assert.False(t, errors.As(err, &ra))
			}
			assert.NotContains(t, err.Error(), "4155550100", "Twilio's message text (which can quote the number) is dropped")
		})
	}
	t.Run("retry-after header wins", func(t *testing.T) {
		var ra *bridge.RetryAfterError
		require.ErrorAs(t, sms.Classify(rest(http.StatusTooManyRequests, 20429), 7*time.Second), &ra)
		assert.Equal(t, 7*time.Second, ra.After)
	})
}

func TestKeyword(t *testing.T) {
	for in, want := range map[string]string{
		"STOP": "STOP", " stop ": "STOP", "Stop.": "STOP", "unsubscribe": "STOP", "STOPALL": "STOP",
		"start": "START", "UNSTOP": "START", "yes": "START",
		"help": "HELP", "INFO": "HELP",
		"please stop": "", "stopping": "", "": "",
	} {
		assert.Equal(t, want, sms.Keyword(in), in)
	}
}

func FuzzParseWebhookForm(f *testing.F) {
	f.Add([]byte(inbound(sid(1), contactA, pool1, "hello").Encode()))
	mms := inbound(sid(2), contactA, pool1, "pic")
	mms.Set("NumMedia", "1")
	mms.Set("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/"+accountSID+"/Messages/MM1/Media/ME1")
	mms.Set("MediaContentType0", "image/png")
	f.Add([]byte(mms.Encode()))
	f.Add([]byte("MessageSid=SM1&MessageSid=SM2"))
	f.Add([]byte("NumMedia=99&MessageSid=" + sid(3) + "&AccountSid=" + accountSID))
	f.Add([]byte("%zz"))
	f.Fuzz(func(t *testing.T, body []byte) {
		form, err := sms.ParseWebhookForm(body)
		if err != nil {
			require.ErrorIs(t, err, sms.ErrWebhook)
			require.Nil(t, form)
			return
		}
		require.Regexp(t, `^(SM|MM)[0-9a-fA-F]{32}$`, form.MessageSID)
		require.Regexp(t, `^AC[0-9a-fA-F]{32}$`, form.AccountSID)
		require.LessOrEqual(t, len(form.Media), 10)
		for _, m := range form.Media {
			require.NotEmpty(t, m.URL)
		}
	})
}
