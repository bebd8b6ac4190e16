package matrix

import "github.com/switchboard-bridge/switchboard/config"

// ConnectorConfig is what the daemon gives the connector of cfg
// (daemon.matrixConfig).
func ConnectorConfig(cfg *config.Config) Config {
	return Config{
		Homeserver: cfg.Homeserver, Appservice: cfg.Appservice, Encryption: cfg.Encryption,
		Permissions: cfg.Permissions, Secret: cfg.Identity.Secret, Lease: cfg.Delivery.Lease.Std(),
	}
}
