package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/id"

	"github.com/switchboard-bridge/switchboard/bridge"
	"github.com/switchboard-bridge/switchboard/commands"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/connectors/matrix"
	"github.com/switchboard-bridge/switchboard/connectors/whatsapp"
	"github.com/switchboard-bridge/switchboard/database"
	"github.com/switchboard-bridge/switchboard/identity"
	"github.com/switchboard-bridge/switchboard/provision"
	"github.com/switchboard-bridge/switchboard/safety"
)

// Options configure Run.
type Options struct {
	ConfigPath string
	Version    string
	// Env looks up SWITCHBOARD_* overrides (os.LookupEnv in production).
	Env config.LookupFunc
	// Stdout receives the first-run instructions; LogOutput the logs.
	Stdout    io.Writer
	LogOutput *os.File
	// Ready, if set, is called once the HTTP server is listening.
	Ready func(addr net.Addr)
	// HTTP bounds the listener; zero fields take DefaultHTTPLimits.
	HTTP HTTPLimits
}

// Daemon is one running switchboard.
type Daemon struct {
	cfg     *config.Config
	log     zerolog.Logger
	db      *dbutil.Database
	router  *bridge.Router
	ident   *identity.Store
	idsvc   *identity.Service
	safety  *safety.Service
	cmds    *commands.Registry
	state   healthState
	routes  map[string]http.Handler
	version string
}

// Run starts switchboard and blocks until ctx ends. Errors from loading the
// config, opening or migrating the database, or binding the listener are
// returned (the caller exits non-zero with them).
func Run(ctx context.Context, opts Options) error {
	cfg, created, err := config.LoadOrCreate(opts.ConfigPath, opts.Env)
	if err != nil {
		return err
	}
	if created {
		regPath := filepath.Join(filepath.Dir(opts.ConfigPath), "registration.yaml")
		if err = config.WriteRegistration(cfg, regPath); err != nil {
			return fmt.Errorf("write registration: %w", err)
		}
		printFirstRun(opts.Stdout, opts.ConfigPath, regPath)
	}
	logOut := opts.LogOutput
	if logOut == nil {
		logOut = os.Stderr
	}
	log := NewLogger(cfg.Logging, logOut)
	ctx = log.WithContext(ctx)
	if keys := cfg.AddedKeys(); len(keys) > 0 {
		log.Info().Strs("keys", keys).Msg("Config upgraded: added keys that were missing")
	}
	if keys := cfg.GeneratedKeys(); len(keys) > 0 {
		log.Info().Strs("keys", keys).Msg("Generated secrets and wrote them to the config")
	}
	if err = checkBuild(cfg); err != nil {
		return err
	}
	warnConfig(log, cfg)
	d := &Daemon{cfg: cfg, log: log, version: opts.Version, routes: map[string]http.Handler{}}
	d.state.setHomeserver(bridge.Health{State: bridge.HealthStarting, Message: "not checked yet"})

	d.db, err = database.Open(ctx, database.Options{
		Type: cfg.Database.Type, URI: cfg.Database.URI,
		MaxOpenConns: cfg.Database.MaxOpenConns, MaxIdleConns: cfg.Database.MaxIdleConns,
	}, log)
	if err != nil {
		return err
	}
	defer d.db.Close()
	warnDatabaseFiles(log, cfg)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.router, err = bridge.New(bridge.Options{
		DB:                d.db,
		Secret:            []byte(cfg.Identity.Secret),
		Log:               log,
		Registerer:        reg,
		Workers:           cfg.Delivery.Workers,
		MaxAttempts:       cfg.Delivery.MaxAttempts,
		RetryBase:         cfg.Delivery.RetryBase.Std(),
		RetryMax:          cfg.Delivery.RetryMax.Std(),
		Lease:             cfg.Delivery.Lease.Std(),
		PollInterval:      cfg.Delivery.PollInterval.Std(),
		RetentionPolicy:   policyFromConfig(cfg.Retention),
		MetadataRetention: cfg.Retention.Metadata.Std(),
	})
	if err != nil {
		return err
	}
	if err = d.openIdentity(ctx); err != nil {
		return err
	}
	if err = d.registerConnectors(ctx, reg); err != nil {
		return err
	}
	defer d.safety.Stop()

	ln, err := net.Listen("tcp", cfg.Appservice.Listen)
	if err != nil {
		return fmt.Errorf("appservice.listen: %w", err)
	}
	if err = d.router.Start(ctx); err != nil {
		_ = ln.Close()
		return err
	}
	srv := newServer(d.handler(reg), opts.HTTP, log.WithContext(context.Background()))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(limitListener(ln, opts.HTTP)) }()
	log.Info().Str("listen", ln.Addr().String()).Str("version", opts.Version).Msg("switchboard is running")
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}

	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	go d.watchHomeserver(watchCtx)
	go d.purgeIdentity(watchCtx)
	// Start-up (migrations, config, crypto) and each burst of traffic
	// leave garbage the heap would otherwise keep mapped for minutes; hand
	// it back once the daemon is quiet so an idle daemon stays small.
	go trimWhenQuiet(watchCtx)

	select {
	case <-ctx.Done():
		err = nil
	case err = <-serveErr:
	}
	stopWatch()
	log.Info().Msg("Shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownBudget)
	defer cancel()
	// Requests get part of the budget; the router (which cancels in-flight
	// sends after its grace) the rest.
	httpCtx, cancelHTTP := context.WithTimeout(shutdownCtx, shutdownBudget/3)
	if srv.Shutdown(httpCtx) != nil {
		_ = srv.Close()
	}
	cancelHTTP()
	if stopErr := d.router.Stop(shutdownCtx); stopErr != nil {
		log.Warn().Err(stopErr).Msg("Router did not stop cleanly")
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// shutdownBudget bounds how long Run takes to stop once ctx ends.
const shutdownBudget = 15 * time.Second

// matrixConfig is what the Matrix connector reads of the loaded
// configuration.
func matrixConfig(cfg *config.Config) matrix.Config {
	return matrix.Config{
		Homeserver:  cfg.Homeserver,
		Appservice:  cfg.Appservice,
		Encryption:  cfg.Encryption,
		Permissions: cfg.Permissions,
		Secret:      cfg.Identity.Secret,
		Lease:       cfg.Delivery.Lease.Std(),
	}
}

// registerConnectors registers the Matrix connector (switchboard is a
// Matrix appservice) and the connectors of the enabled networks, and mounts
// their HTTP handlers. Networks this build has no connector for yet are
// reported, not silently ignored.
func (d *Daemon) registerConnectors(ctx context.Context, reg prometheus.Registerer) error {
	mx, err := matrix.New(matrixConfig(d.cfg), d.db, d.log)
	if err != nil {
		return err
	}
	if err = d.router.Register(mx); err != nil {
		return err
	}
	mx.SetIdentity(d.ident)
	mx.SetLegTimerHandler(matrix.NewRouterLegTimer(d.router))
	mx.SetLegLister(d.router)
	d.cmds = commands.New(commands.Options{})
	mx.SetCommands(d.cmds)
	d.routes["/_matrix/app/"] = mx.AppserviceHandler()
	// WhatsApp before SMS: `start` prefers the first network that reaches
	// a number, and WhatsApp is end-to-end encrypted.
	var wa *whatsapp.Connector
	if d.cfg.WhatsApp.Enabled {
		if wa, err = d.registerWhatsApp(mx, reg); err != nil {
			return err
		}
	}
	if d.cfg.SMS.Enabled {
		if err = d.registerSMS(mx, reg); err != nil {
			return err
		}
	}
	if err = d.registerSafety(ctx, mx, reg); err != nil {
		return err
	}
	if err = d.registerCommands(d.cmds, mx, wa); err != nil {
		return err
	}
	d.registerProvisioning(mx, wa)
	return nil
}

// registerCommands registers every bot command with its owner, in the
// order help lists them: routing's start, identity's, WhatsApp's (which
// answer that WhatsApp is not configured when wa is nil), retention, the
// bot's recovery key, safety's. The Matrix connector answers them from
// cmds.
func (d *Daemon) registerCommands(cmds *commands.Registry, mx *matrix.Connector, wa *whatsapp.Connector) error {
	svc := d.safety
	starter := matrix.NewRouterStarter(d.router, mx, matrix.StartOptions{
		Gate: func(ctx context.Context, user id.UserID, network bridge.NetworkID) error {
			return svc.NewChatGate(ctx, string(user), network)
		},
	})
	if err := cmds.Register(matrix.StartCommand(provision.StartRecorder(starter))); err != nil {
		return err
	}
	if err := d.idsvc.Register(cmds); err != nil {
		return err
	}
	if err := whatsapp.Register(cmds, wa); err != nil {
		return err
	}
	if err := cmds.Register(whatsapp.BackfillCommand(wa, d.router)); err != nil {
		return err
	}
	if err := cmds.Register(whatsapp.InviteCommand(wa, d.router, svc.NewChatGate)); err != nil {
		return err
	}
	if err := cmds.Register(matrix.RetentionCommand(provision.RetentionRecorder(matrix.NewRouterRetention(d.router)))); err != nil {
		return err
	}
	if err := cmds.Register(matrix.DoublePuppetCommand(mx)); err != nil {
		return err
	}
	if err := cmds.Register(commands.RecoveryKeyCommand(mx)); err != nil {
		return err
	}
	return svc.Register(cmds)
}

func printFirstRun(w io.Writer, cfgPath, regPath string) {
	if w == nil {
		return
	}
	fmt.Fprintf(w, `switchboard: first run — wrote %s (secrets generated, SQLite database next to it)
and %s (the appservice registration).

Next step: register switchboard with your homeserver.
  - Synapse:  add %s to app_service_config_files in homeserver.yaml
  - Dendrite: add it to app_service_api.config_files in dendrite.yaml
then restart the homeserver. Check homeserver.address and homeserver.domain in
%s (every key is documented there). switchboard keeps running meanwhile and
serves /health; it retries the homeserver until it answers.
`, cfgPath, regPath, regPath, cfgPath)
}

// policyFromConfig is the router's retention policy from the config:
// retention.default and the network defaults.
func policyFromConfig(r config.Retention) *bridge.RetentionPolicy {
	p := &bridge.RetentionPolicy{Default: r.Default.Std(), Networks: map[bridge.NetworkID]time.Duration{}}
	for network, d := range r.Networks {
		p.Networks[bridge.NetworkID(network)] = d.Std()
	}
	return p
}
