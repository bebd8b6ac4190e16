package keyring

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// labelsFileConsts returns the value of every string constant declared in
// labels.go.
func labelsFileConsts(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "labels.go", nil, 0)
	require.NoError(t, err)
	out := map[string]string{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				require.True(t, ok, "%s: a label is a plain string literal", name.Name)
				v, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				out[name.Name] = v
			}
		}
	}
	return out
}

func TestLabelsUnique(t *testing.T) {
	consts := labelsFileConsts(t)
	seen := map[string]string{}
	for name, v := range consts {
		if other, dup := seen[v]; dup {
			t.Errorf("%s and %s are both %q: two uses would share a key", name, other, v)
		}
		seen[v] = name
		require.Contains(t, Labels(), v, "%s is missing from Labels()", name)
	}
	require.Len(t, Labels(), len(consts), "Labels() lists each constant once")
	for _, l := range Labels() {
		require.True(t, strings.HasPrefix(l, "switchboard"), "%q", l)
	}
}

// labelLike is the shape of a label: where one is written outside
// labels.go, a key is derived under a label the golden vectors and the
// uniqueness test do not see.
var labelLike = regexp.MustCompile(`^switchboard[ /].*v[0-9]+$|^switchboard [a-z]+ $`)

func TestLabelsOnlyInLabelsFile(t *testing.T) {
	root := filepath.Join("..", "..")
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || name == "node_modules" || (strings.HasPrefix(name, ".") && path != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			path == filepath.Join(root, "internal", "keyring", "labels.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
		if err != nil {
			return nil // someone's file being edited; the build catches it
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && labelLike.MatchString(v) {
					found = append(found, path+": "+lit.Value)
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	slices.Sort(found)
	require.Empty(t, found, "labels belong in internal/keyring/labels.go")
}
