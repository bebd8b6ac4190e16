// Command switchboard runs the switchboard bridge daemon. See README.md and
// the example config (switchboard -e) for how to set it up.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/switchboard-bridge/switchboard"
	"github.com/switchboard-bridge/switchboard/config"
	"github.com/switchboard-bridge/switchboard/daemon"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("switchboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "config.yaml", "config file")
	generate := fs.Bool("g", false, "(re)generate the appservice registration from the config and exit")
	regPath := fs.String("r", "registration.yaml", "registration file written by -g")
	example := fs.Bool("e", false, "write the example config to the -c file and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: switchboard [-c FILE] | -g [-c FILE] [-r REG] | -e [-c FILE] | version")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch rest := fs.Args(); {
	case len(rest) == 1 && rest[0] == "version":
		fmt.Fprintln(stdout, "switchboard", Version)
		return 0
	case len(rest) > 0:
		fmt.Fprintf(stderr, "switchboard: unknown argument %q (try -h)\n", rest[0])
		return 2
	}
	switch {
	case *example:
		return writeExample(*cfgPath, stdout, stderr)
	case *generate:
		cfg, _, err := config.LoadOrCreate(*cfgPath, os.LookupEnv)
		if err == nil {
			err = config.WriteRegistration(cfg, *regPath)
		}
		if err != nil {
			return fail(stderr, err)
		}
		fmt.Fprintf(stdout, "Wrote %s from %s. Add it to your homeserver's appservice config files and restart the homeserver.\n", *regPath, *cfgPath)
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := daemon.Run(ctx, daemon.Options{
		ConfigPath: *cfgPath,
		Version:    Version,
		Env:        os.LookupEnv,
		Stdout:     stdout,
	})
	if err != nil {
		return fail(stderr, err)
	}
	return 0
}

func writeExample(path string, stdout, stderr io.Writer) int {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			fmt.Fprintf(stderr, "switchboard: %s already exists; not overwriting it (choose another file with -c)\n", path)
			return 1
		}
		return fail(stderr, err)
	}
	_, err = f.Write(switchboard.ExampleConfig)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "Wrote the example config to %s\n", path)
	return 0
}

// fail prints err on one line and returns the exit code for it.
func fail(stderr io.Writer, err error) int {
	msg := strings.ReplaceAll(err.Error(), "\n", "; ")
	fmt.Fprintln(stderr, "switchboard:", msg)
	return 1
}
