package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// minimalYAML is the smallest config that validates: only the secrets,
// which have no default.
const minimalYAML = `
appservice:
  as_token: as-secret-0123456789abcdef0123456789
  hs_token: hs-secret-0123456789abcdef0123456789
encryption:
  pickle_key: pickle-secret
identity:
  secret: identity-secret-0123456789
`

// smsYAML is minimalYAML with a valid, enabled SMS section.
var smsYAML = set(nil, minimalYAML,
	"sms.enabled", "true",
	"sms.public_url", "https://sms.bridge.example.net",
	"sms.twilio.account_sid", "AC0123456789abcdef0123456789abcdef",
	"sms.twilio.auth_token", "0123456789abcdef0123456789abcdef",
	"sms.twilio.numbers", `["+14155550100"]`,
)

// envMap turns a map into a LookupFunc, so tests never touch the process
// environment.
func envMap(m map[string]string) LookupFunc {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// set returns doc with each dotted path set to a YAML value, creating
// sections as needed. Pairs are path, value.
func set(t testing.TB, doc string, pairs ...string) string {
	fail := func(err error) {
		if t == nil {
			panic(err)
		}
		t.Helper()
		t.Fatal(err)
	}
	d, err := parseDoc([]byte(doc))
	if err != nil {
		fail(err)
	}
	if len(d.Content) == 0 {
		d = &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		var val yaml.Node
		if err := yaml.Unmarshal([]byte(pairs[i+1]), &val); err != nil {
			fail(err)
		}
		value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: ""}
		if len(val.Content) > 0 {
			value = val.Content[0]
		}
		n := d.Content[0]
		keys := strings.Split(pairs[i], ".")
		for j, key := range keys {
			idx := keyIndex(n, key)
			if j == len(keys)-1 {
				if idx >= 0 {
					n.Content[idx+1] = value
				} else {
					n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, value)
				}
				break
			}
			if idx < 0 {
				child := &yaml.Node{Kind: yaml.MappingNode}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, child)
				n = child
			} else {
				n = n.Content[idx+1]
			}
		}
	}
	out, err := yaml.Marshal(d)
	if err != nil {
		fail(err)
	}
	return string(out)
}

// requireKeyError asserts that err names key (in its text, and as the Key
// of a *KeyError) with a cause that wraps sentinel.
func requireKeyError(t *testing.T, err error, key string, sentinel error) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, sentinel)
	require.Contains(t, err.Error(), key)
	for _, ke := range keyErrors(err) {
		if ke.Key == key && errors.Is(ke, sentinel) {
			return
		}
	}
	t.Fatalf("no *KeyError for %q wrapping %v in %v", key, sentinel, err)
}

// keyErrors flattens err into its *KeyErrors.
func keyErrors(err error) []*KeyError {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var ke *KeyError
	if errors.As(err, &ke) {
		return []*KeyError{ke}
	}
	return nil
}

// keyPaths lists the dotted path of every mapping key in a YAML file, in
// order.
func keyPaths(t *testing.T, data []byte) []string {
	t.Helper()
	doc, err := parseDoc(data)
	require.NoError(t, err)
	var out []string
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinKey(path, n.Content[i].Value)
			out = append(out, p)
			walk(n.Content[i+1], p)
		}
	}
	walk(docRoot(doc), "")
	return out
}

// scalarAt returns the scalar value at a dotted path of a YAML file.
func scalarAt(t *testing.T, data []byte, path string) string {
	t.Helper()
	doc, err := parseDoc(data)
	require.NoError(t, err)
	n := lookup(docRoot(doc), strings.Split(path, ".")...)
	require.NotNil(t, n, path)
	return n.Value
}
