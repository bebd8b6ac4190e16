package safety

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	throttles   *prometheus.CounterVec
	suspensions *prometheus.CounterVec
	blocks      prometheus.Counter
	blockedMsgs prometheus.Counter
	reports     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		throttles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "safety", Name: "throttles_total",
			Help: "Messages, new chats and SMS refused by a safety limit, by limit (sender, conversation, inbound, new_chats, high_cost).",
		}, []string{"limit"}),
		suspensions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "safety", Name: "suspensions_total",
			Help: "Users suspended, by who decided (score or admin).",
		}, []string{"by"}),
		blocks: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "safety", Name: "blocks_total",
			Help: "`block` commands that blocked a contact.",
		}),
		blockedMsgs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "safety", Name: "blocked_deliveries_total",
			Help: "Events kept from a leg whose owner blocked the sender.",
		}),
		reports: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "safety", Name: "reports_total",
			Help: "`report` commands forwarded to the admins.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.throttles, m.suspensions, m.blocks, m.blockedMsgs, m.reports)
	}
	return m
}
