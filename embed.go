// Package switchboard is the root of the switchboard bridge module. It
// holds the files that are embedded into the binary.
package switchboard

import _ "embed"

// ExampleConfig is the annotated example configuration (example-config.yaml):
// it documents every key, and with its "generate" secrets filled in it is
// the config written on first run.
//
//go:embed example-config.yaml
var ExampleConfig []byte
