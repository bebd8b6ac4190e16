package sms_test

import (
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"
)

// BenchmarkIncomingWebhook drives POST /sms/twilio/incoming through the
// real handler: signature check, routing look-up and the router's durable
// Submit (SQLite), and reports p50/p99 handler latency.
func BenchmarkIncomingWebhook(b *testing.B) {
	e := newEnv(b)
	e.conversation(contactA, "!room1")
	type signed struct{ body, sig string }
	forms := make([]signed, b.N)
	for i := range b.N {
		f := inbound(fmt.Sprintf("SM%032x", i+1), contactA, pool1, "benchmark message")
		forms[i] = signed{f.Encode(), sign("/sms/twilio/incoming", f)}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		rec := e.postRaw("/sms/twilio/incoming", forms[i].body, forms[i].sig)
		lat = append(lat, time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
