package cli

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSelfCommand(t *testing.T) {
	dir := t.TempDir()
	installed := filepath.Join(dir, "bin", "switchyard")
	built := filepath.Join(dir, "go-build123", "b001", "exe", "switchyard")
	other := filepath.Join(dir, "src", "switchyard")
	for _, p := range []string{installed, built, other} {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	onPath := func(string) (string, error) { return installed, nil }
	notOnPath := func(string) (string, error) { return "", errors.New("not found") }
	for _, tc := range []struct {
		name   string
		exe    string
		lookup func(string) (string, error)
		want   string
	}{
		{"installed", installed, onPath, "switchyard"},
		{"go run", built, onPath, "go run ./cmd/switchyard"},
		{"go run, nothing installed", built, notOnPath, "go run ./cmd/switchyard"},
		{"built elsewhere", other, onPath, other},
		{"unknown executable", "", notOnPath, "switchyard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := selfCommand(tc.exe, tc.lookup); got != tc.want {
				t.Errorf("selfCommand(%q) = %q, want %q", tc.exe, got, tc.want)
			}
		})
	}
}
