package matrix

// StubCommands is stubCommands for the external tests: every owner's
// commands, each answering "<name> is not available yet".
var StubCommands = stubCommands
