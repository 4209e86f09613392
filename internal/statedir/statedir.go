// Package statedir writes the files of Switchyard's state directory (the
// admin token, the admin endpoint, the sticky-session key) the one way they
// are written: atomically, so a crash leaves the old file or the new one,
// never a torn or empty one. The store (bbolt) is the only file it does not
// write.
package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// WriteFile replaces path with data: a temporary file in the same
// directory, written with perm and fsynced, renamed into place, then the
// directory fsynced so the rename survives a crash.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// CreateFile is WriteFile for a file that must never be replaced (a
// secret someone may already hold): when path exists it returns an error
// wrapping fs.ErrExist and leaves that file as it is, even when another
// process created it a moment before.
func CreateFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// Link, not rename: the link fails if path appeared meanwhile.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", path, fs.ErrExist)
		}
		return fmt.Errorf("create %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// writeTemp writes data to a new file beside path, fsynced, and returns its
// name.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	// CreateTemp makes 0600 files; Chmod sets what the caller asked for
	// whatever the umask.
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// LooseError is a state directory or a file in it that other users may
// read or write. Like OpenSSH with private keys, Switchyard says so: its
// message names the path, the mode, who has access and the chmod fix.
type LooseError struct {
	Path string
	Mode fs.FileMode // permission bits found
	Want fs.FileMode // permission bits to set
	Dir  bool
}

func (e *LooseError) Error() string {
	what := "file"
	if e.Dir {
		what = "directory"
	}
	return fmt.Sprintf("%s %s has mode %04o: %s; run `%s`", what, e.Path, e.Mode, e.Access(), e.Fix())
}

// Access says who has access beyond the owner.
func (e *LooseError) Access() string {
	var who []string
	if e.Mode&0o070 != 0 {
		who = append(who, "its group")
	}
	if e.Mode&0o007 != 0 {
		who = append(who, "every other user")
	}
	verb := "can read it"
	if e.Mode&0o022 != 0 {
		verb = "can change it"
		if e.Dir {
			verb = "can replace the files in it"
		}
	} else if e.Dir {
		verb = "can list it"
	}
	return strings.Join(who, " and ") + " " + verb
}

// Fix is the command that makes the path private.
func (e *LooseError) Fix() string { return fmt.Sprintf("chmod %o %s", e.Want, e.Path) }

// CheckPrivate returns a *LooseError when group or others have any
// permission on path (a directory or a regular file), and nil when only its
// owner has, or when it does not exist (it will be created private).
func CheckPrivate(path string) error {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check permissions of %s: %w", path, err)
	}
	perm := info.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	want := perm &^ 0o077
	if info.IsDir() {
		want = 0o700
	}
	return &LooseError{Path: path, Mode: perm, Want: want, Dir: info.IsDir()}
}
