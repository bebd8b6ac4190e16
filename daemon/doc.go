// Package daemon assembles switchboard from its parts: it loads the config,
// sets up logging, opens and migrates the database, starts the core router
// with the enabled connectors, and serves the HTTP endpoints (/health,
// /metrics, and the connectors' webhooks) on appservice.listen.
package daemon
