package admin

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchyard/switchyard/internal/statedir"
)

// Files `switchyard serve` writes into its --state-dir so the CLI on the
// same host finds the admin API by itself.
const (
	TokenFile    = "admin.token"
	EndpointFile = "admin.url"
)

// Environment variables ResolveEndpoint reads.
const (
	EnvServer = "SWITCHYARD_SERVER"
	EnvToken  = "SWITCHYARD_TOKEN"
	// EnvCACert names a PEM file of certificates to trust for an https://
	// server (the CLI's --ca-cert).
	EnvCACert = "SWITCHYARD_CA_CERT"
)

// ErrLooseToken means the admin token file is accessible to other users;
// EnsureToken refuses to use it.
var ErrLooseToken = errors.New("admin token is not private")

// ErrNoServer means no admin endpoint (or no token for it) could be found.
var ErrNoServer = errors.New("no switchyard server found")

// tokenBytes is the token's entropy; it is written hex-encoded.
const tokenBytes = 32

// EnsureToken returns the admin token stored in stateDir, creating it on
// first start: 32 random bytes, hex-encoded, written atomically with mode
// 0600 (the directory is created 0700 if missing). An existing token is
// reused, so CLIs and scripts that hold it keep working across restarts. A
// token file that group or others may access is refused with an error
// wrapping ErrLooseToken that names the mode and the chmod fix; a file that
// does not hold a token is an error naming the file and the fix.
func EnsureToken(stateDir string) (string, error) {
	path := filepath.Join(stateDir, TokenFile)
	tok, err := readToken(path)
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return "", fmt.Errorf("create state dir for the admin token: %w", err)
	}
	buf := make([]byte, tokenBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate admin token: %w", err)
	}
	tok = hex.EncodeToString(buf)
	// If another process created the token meanwhile, keep theirs rather
	// than replacing a token someone may already use.
	if err := statedir.CreateFile(path, []byte(tok+"\n"), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readToken(path)
		}
		return "", fmt.Errorf("admin token: %w", err)
	}
	return tok, nil
}

func readToken(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("admin token %s is not a regular file: remove it so `switchyard serve` can write a new token", path)
	}
	// Refused, not tightened (as OpenSSH refuses a private key others can
	// read): whoever else could read it may hold it already, and a silent
	// chmod would hide that. The operator decides: chmod if nobody else
	// can have read it, or remove it for a new token.
	var loose *statedir.LooseError
	if err := statedir.CheckPrivate(path); errors.As(err, &loose) {
		return "", fmt.Errorf("%w: admin token %s has mode %04o: %s, and whoever read it controls every deployment; "+
			"if nobody else can have read it, run `%s`; otherwise remove it and restart `switchyard serve` to get a new token",
			ErrLooseToken, path, loose.Mode, loose.Access(), loose.Fix())
	} else if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if raw, err := hex.DecodeString(tok); err != nil || len(raw) < 16 {
		return "", fmt.Errorf("admin token %s does not hold a token (want %d hex digits): remove it and restart `switchyard serve` to write a new one",
			path, 2*tokenBytes)
	}
	return tok, nil
}

// WriteEndpoint records the admin API's base URL (e.g.
// "http://127.0.0.1:9901") in stateDir, atomically, for Discover.
func WriteEndpoint(stateDir, url string) error {
	path := filepath.Join(stateDir, EndpointFile)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("write admin endpoint %s: %w", path, err)
	}
	if err := statedir.WriteFile(path, []byte(strings.TrimSpace(url)+"\n"), 0o600); err != nil {
		return fmt.Errorf("admin endpoint: %w", err)
	}
	return nil
}

// RemoveEndpoint removes the endpoint file on a clean shutdown, so the CLI
// says no server runs instead of failing to connect. A missing file is fine.
func RemoveEndpoint(stateDir string) error {
	err := os.Remove(filepath.Join(stateDir, EndpointFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove admin endpoint: %w", err)
	}
	return nil
}

// Discover reads the admin URL and token that `switchyard serve` wrote into
// stateDir. Errors wrap ErrNoServer when either file is missing.
func Discover(stateDir string) (url, token string, err error) {
	url, err = readEndpoint(stateDir)
	if err != nil {
		return "", "", err
	}
	token, err = discoverToken(stateDir)
	if err != nil {
		return "", "", err
	}
	return url, token, nil
}

func readEndpoint(stateDir string) (string, error) {
	path := filepath.Join(stateDir, EndpointFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w in state dir %s (no %s): start `switchyard serve`, or pass --server/--token",
			ErrNoServer, stateDir, EndpointFile)
	}
	if err != nil {
		return "", fmt.Errorf("read admin endpoint: %w", err)
	}
	url := strings.TrimSpace(string(b))
	if url == "" {
		return "", fmt.Errorf("%w: %s is empty: restart `switchyard serve`, or pass --server/--token", ErrNoServer, path)
	}
	return normalizeURL(url), nil
}

func discoverToken(stateDir string) (string, error) {
	path := filepath.Join(stateDir, TokenFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: no admin token in state dir %s: pass --token or set %s", ErrNoServer, stateDir, EnvToken)
	}
	if err != nil {
		// Typically permission denied: the token belongs to the user
		// running serve.
		return "", fmt.Errorf("read admin token: %w (run as the user of `switchyard serve`, or pass --token)", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("%w: admin token %s is empty: pass --token or set %s", ErrNoServer, path, EnvToken)
	}
	return tok, nil
}

// ResolveEndpoint finds the admin API for the CLI. The URL and the token are
// each taken from the flag, else the environment (SWITCHYARD_SERVER,
// SWITCHYARD_TOKEN), else the files in stateDir (skipped when stateDir is
// empty). Errors wrap ErrNoServer and say what to pass.
func ResolveEndpoint(flagServer, flagToken, stateDir string) (url, token string, err error) {
	url = firstNonEmpty(flagServer, os.Getenv(EnvServer))
	token = firstNonEmpty(flagToken, os.Getenv(EnvToken))
	if url == "" {
		if stateDir == "" {
			return "", "", fmt.Errorf("%w: start `switchyard serve`, or pass --server/--token", ErrNoServer)
		}
		if url, err = readEndpoint(stateDir); err != nil {
			return "", "", err
		}
	}
	url = normalizeURL(url)
	if token == "" {
		if stateDir == "" {
			return "", "", fmt.Errorf("%w: no token for %s: pass --token or set %s", ErrNoServer, url, EnvToken)
		}
		if token, err = discoverToken(stateDir); err != nil {
			return "", "", fmt.Errorf("server %s: %w", url, err)
		}
	}
	return url, token, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// normalizeURL accepts "host:port" as well as a URL, and drops a trailing
// slash.
func normalizeURL(u string) string {
	u = strings.TrimSpace(u)
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return strings.TrimRight(u, "/")
}
