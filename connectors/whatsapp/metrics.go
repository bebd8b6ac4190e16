package whatsapp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	messages *prometheus.CounterVec
	logins   prometheus.GaugeFunc
}

func newMetrics(c *Connector) *metrics {
	return &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sb_whatsapp_messages_total",
			Help: "WhatsApp events by direction (in, out) and result (accepted, dropped, retry; sent, error).",
		}, []string{"direction", "result"}),
		logins: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sb_whatsapp_logins_connected",
			Help: "WhatsApp logins (users' and the relay's) currently connected.",
		}, func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			n := 0
			for _, l := range c.logins {
				if l.state == StateConnected {
					n++
				}
			}
			return float64(n)
		}),
	}
}

// RegisterMetrics registers the connector's Prometheus metrics
// (sb_whatsapp_messages_total, sb_whatsapp_logins_connected).
func (c *Connector) RegisterMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	return errors.Join(reg.Register(c.metrics.messages), reg.Register(c.metrics.logins))
}
