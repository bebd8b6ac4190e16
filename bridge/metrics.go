package bridge

import "github.com/prometheus/client_golang/prometheus"

// metrics are the router's Prometheus collectors.
type metrics struct {
	messages   *prometheus.CounterVec
	retries    *prometheus.CounterVec
	paced      *prometheus.CounterVec
	panics     *prometheus.CounterVec
	queueDepth prometheus.Gauge
	latency    *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard",
			Name:      "messages_total",
			Help:      "Messages by network, direction (in = accepted from the network, out = delivered to it) and result.",
		}, []string{"network", "direction", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard",
			Name:      "delivery_retries_total",
			Help:      "Deliveries that failed transiently and were scheduled for a retry, by destination network.",
		}, []string{"network"}),
		paced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard",
			Name:      "delivery_paced_total",
			Help:      "Deliveries a connector held back to respect its network's throughput (not failures), by destination network.",
		}, []string{"network"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard",
			Name:      "connector_panics_total",
			Help:      "Panics recovered from connector code, by network.",
		}, []string{"network"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "switchboard",
			Name:      "queue_depth",
			Help:      "Deliveries accepted but not yet delivered or failed, held by this process.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "switchboard",
			Name:      "delivery_latency_seconds",
			Help:      "Time from accepting a message to delivering it, by destination network.",
			Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"network"}),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.retries, m.paced, m.panics, m.queueDepth, m.latency)
	}
	return m
}
