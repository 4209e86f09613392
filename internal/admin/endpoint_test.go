package admin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestEnsureToken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	tok, err := EnsureToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) != 64 || strings.Trim(tok, "0123456789abcdef") != "" {
		t.Errorf("token = %q, want 64 hex digits", tok)
	}
	path := filepath.Join(dir, TokenFile)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, want 0600", info.Mode().Perm())
	}
	if dinfo, _ := os.Stat(dir); dinfo.Mode().Perm() != 0o700 {
		t.Errorf("state dir mode = %v, want 0700", dinfo.Mode().Perm())
	}
	again, err := EnsureToken(dir)
	if err != nil || again != tok {
		t.Errorf("second EnsureToken = %q, %v; want the same token %q", again, err, tok)
	}
	other, _ := EnsureToken(t.TempDir())
	if other == tok {
		t.Error("two state dirs got the same token")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	t.Run("a token others can read is refused, not tightened", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			got, err := EnsureToken(dir)
			if !errors.Is(err, ErrLooseToken) || got != "" {
				t.Fatalf("EnsureToken over a %04o token = %q, %v; want ErrLooseToken", mode, got, err)
			}
			for _, want := range []string{path, fmt.Sprintf("mode %04o", mode), "chmod 600 " + path, "remove it"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("EnsureToken over a %04o token: error %q does not contain %q", mode, err, want)
				}
			}
			if info, _ := os.Stat(path); info.Mode().Perm() != mode {
				t.Errorf("mode after EnsureToken = %04o, want %04o left as it was", info.Mode().Perm(), mode)
			}
		}
		// After the fix the error names, the same token is used again.
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := EnsureToken(dir); err != nil || got != tok {
			t.Errorf("EnsureToken after chmod 600 = %q, %v; want the existing token", got, err)
		}
	})
	t.Run("malformed token file", func(t *testing.T) {
		bad := t.TempDir()
		if err := os.WriteFile(filepath.Join(bad, TokenFile), []byte("hunter2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := EnsureToken(bad)
		if err == nil || !strings.Contains(err.Error(), "remove it") || !strings.Contains(err.Error(), TokenFile) {
			t.Errorf("EnsureToken over a malformed file = %v, want an error naming the file and the fix", err)
		}
	})
	t.Run("concurrent first starts agree", func(t *testing.T) {
		d := t.TempDir()
		toks := make([]string, 8)
		var wg sync.WaitGroup
		for i := range toks {
			wg.Go(func() {
				var err error
				if toks[i], err = EnsureToken(d); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for _, tk := range toks[1:] {
			if tk != toks[0] {
				t.Fatalf("concurrent EnsureToken returned different tokens: %v", toks)
			}
		}
	})
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Discover(dir); !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), "start `switchyard serve`") {
		t.Errorf("Discover in an empty dir = %v, want ErrNoServer with a hint", err)
	}
	tok, err := EnsureToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteEndpoint(dir, "http://127.0.0.1:9901"); err != nil {
		t.Fatal(err)
	}
	url, gotTok, err := Discover(dir)
	if err != nil || url != "http://127.0.0.1:9901" || gotTok != tok {
		t.Errorf("Discover = %q, %q, %v; want the written URL and token", url, gotTok, err)
	}
	if err := WriteEndpoint(dir, "http://127.0.0.1:9999"); err != nil {
		t.Fatal(err)
	}
	if url, _, _ := Discover(dir); url != "http://127.0.0.1:9999" {
		t.Errorf("Discover after a rewrite = %q, want the new URL", url)
	}
	if err := RemoveEndpoint(dir); err != nil {
		t.Fatal(err)
	}
	if err := RemoveEndpoint(dir); err != nil {
		t.Errorf("second RemoveEndpoint = %v, want nil", err)
	}
	if _, _, err := Discover(dir); !errors.Is(err, ErrNoServer) {
		t.Errorf("Discover after RemoveEndpoint = %v, want ErrNoServer", err)
	}
}

func TestResolveEndpoint(t *testing.T) {
	stateDir := t.TempDir()
	stateTok, err := EnsureToken(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteEndpoint(stateDir, "http://127.0.0.1:9901"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                string
		flagServer, flagTok string
		envServer, envTok   string
		stateDir            string
		wantURL, wantTok    string
		wantErr             string
	}{
		{name: "state dir only", stateDir: stateDir, wantURL: "http://127.0.0.1:9901", wantTok: stateTok},
		{name: "env beats state dir", envServer: "http://10.0.0.5:9901", envTok: "envtok", stateDir: stateDir,
			wantURL: "http://10.0.0.5:9901", wantTok: "envtok"},
		{name: "flags beat env", flagServer: "https://deploy.example:9901/", flagTok: "flagtok",
			envServer: "http://10.0.0.5:9901", envTok: "envtok", stateDir: stateDir,
			wantURL: "https://deploy.example:9901", wantTok: "flagtok"},
		{name: "server from flag, token from env", flagServer: "10.0.0.7:9901", envTok: "envtok", stateDir: stateDir,
			wantURL: "http://10.0.0.7:9901", wantTok: "envtok"},
		{name: "server from env, token from state dir", envServer: "127.0.0.1:9902", stateDir: stateDir,
			wantURL: "http://127.0.0.1:9902", wantTok: stateTok},
		{name: "nothing anywhere", stateDir: t.TempDir(),
			wantErr: "no switchyard server found"},
		{name: "no state dir, nothing set",
			wantErr: "no switchyard server found: start `switchyard serve`, or pass --server/--token"},
		{name: "server but no token", flagServer: "10.0.0.7:9901",
			wantErr: "no token for http://10.0.0.7:9901: pass --token or set SWITCHYARD_TOKEN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvServer, tt.envServer)
			t.Setenv(EnvToken, tt.envTok)
			url, tok, err := ResolveEndpoint(tt.flagServer, tt.flagTok, tt.stateDir)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoServer) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ResolveEndpoint = %q, %q, %v; want ErrNoServer containing %q", url, tok, err, tt.wantErr)
				}
				return
			}
			if err != nil || url != tt.wantURL || tok != tt.wantTok {
				t.Errorf("ResolveEndpoint = %q, %q, %v; want %q, %q", url, tok, err, tt.wantURL, tt.wantTok)
			}
		})
	}
}
