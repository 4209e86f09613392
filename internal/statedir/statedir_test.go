package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	for _, content := range []string{"first", "second"} {
		if err := WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("after WriteFile(%q): %q, %v", content, b, err)
		}
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", info.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestCreateFileNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := CreateFile(path, []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := CreateFile(path, []byte("theirs"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second CreateFile: %v, want fs.ErrExist", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Fatalf("file holds %q after a refused CreateFile, want the first content", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(entries))
	}
}

func TestCheckPrivate(t *testing.T) {
	tests := []struct {
		name   string
		dir    bool
		mode   fs.FileMode
		want   string // "" when private
		access string
	}{
		{"private dir", true, 0o700, "", ""},
		{"dir others can list", true, 0o755, "chmod 700 ", "its group and every other user can list it"},
		{"dir only others can list", true, 0o705, "chmod 700 ", "every other user can list it"},
		{"dir its group can write", true, 0o770, "chmod 700 ", "its group can replace the files in it"},
		{"world-writable dir", true, 0o777, "chmod 700 ", "its group and every other user can replace the files in it"},
		{"private file", false, 0o600, "", ""},
		{"file others can read", false, 0o644, "chmod 600 ", "its group and every other user can read it"},
		{"file its group can write", false, 0o620, "chmod 600 ", "its group can change it"},
		{"read-only file others can read", false, 0o444, "chmod 400 ", "its group and every other user can read it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x")
			var err error
			if tt.dir {
				err = os.Mkdir(path, 0o700)
			} else {
				err = os.WriteFile(path, []byte("secret"), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			err = CheckPrivate(path)
			if tt.want == "" {
				if err != nil {
					t.Errorf("CheckPrivate(%04o) = %v, want nil", tt.mode, err)
				}
				return
			}
			var loose *LooseError
			if !errors.As(err, &loose) {
				t.Fatalf("CheckPrivate(%04o) = %v, want a *LooseError", tt.mode, err)
			}
			if loose.Fix() != tt.want+path || loose.Access() != tt.access || loose.Mode != tt.mode {
				t.Errorf("CheckPrivate(%04o) = fix %q, access %q, mode %04o; want %q, %q, %04o",
					tt.mode, loose.Fix(), loose.Access(), loose.Mode, tt.want+path, tt.access, tt.mode)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("mode %04o", tt.mode)) {
				t.Errorf("message %q does not name the path and the mode", msg)
			}
		})
	}
	if err := CheckPrivate(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Errorf("CheckPrivate(missing) = %v, want nil (it will be created private)", err)
	}
}
