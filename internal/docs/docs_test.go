// Package docs checks that the documentation states what the code does
// where a page claims to be generated from it.
package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// TestArchitectureImportGraph: the import graph on docs/architecture.md is
// the one the code has (scripts/importgraph.sh). Regenerate the page's
// block with that script when a package or an import changes.
func TestArchitectureImportGraph(t *testing.T) {
	out, err := exec.Command(filepath.Join(root(), "scripts", "importgraph.sh")).Output()
	if err != nil {
		t.Fatalf("scripts/importgraph.sh: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(root(), "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- importgraph:begin -->\n```\n", "```\n<!-- importgraph:end -->"
	s := string(page)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("docs/architecture.md has no import graph block")
	}
	if got, want := s[i+len(begin):j], string(out); got != want {
		t.Errorf("docs/architecture.md's import graph is stale: run scripts/update-architecture.sh\n--- page\n%s--- code\n%s", got, want)
	}
}
