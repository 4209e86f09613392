package kubeenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testenv"
)

// Shared is one control plane for all the tests of a package, started by
// the first test that asks for it and stopped after the last (starting one
// takes seconds of a shared machine's CPU; tests keep apart by namespace,
// see Kube.Namespace). Declare it at package level and run the tests
// through it:
//
//	var kube = &kubeenv.Shared{
//		CRDs:              func(t testing.TB) []string { return []string{kubeenv.GatewayAPICRDs(t)} },
//		ControllerManager: true,
//	}
//
//	func TestMain(m *testing.M) { os.Exit(kube.Run(m)) }
//
//	func TestX(t *testing.T) {
//		k := kube.Get(t)
//		ns := k.Namespace(t)
//		...
//	}
type Shared struct {
	// CRDs returns the CRD directories and files to install; it runs once,
	// with the first test that calls Get. Nil installs none.
	CRDs func(t testing.TB) []string
	// ControllerManager also starts kube-controller-manager with
	// DefaultControllers.
	ControllerManager bool

	once sync.Once
	kube *Kube
	err  error
	dir  string
}

// Get returns the shared Kube, starting it on the first call. Like
// StartKube, it skips under -short (unless CI=true) and when the binaries
// are missing (failing under CI).
func (s *Shared) Get(t testing.TB) *Kube {
	t.Helper()
	testenv.Integration(t)
	assets := RequireAssets(t)
	if s.ControllerManager {
		if err := executable(filepath.Join(assets, controllerManagerBin)); err != nil {
			if testenv.CI() {
				t.Fatalf("CI=true: %v; %s", err, assetsHint)
			}
			t.Skipf("%v; %s", err, assetsHint)
		}
	}
	started := false
	s.once.Do(func() {
		started = true
		s.err = errors.New("the shared control plane failed to start in an earlier test")
		var crds []string
		if s.CRDs != nil {
			crds = s.CRDs(t) // may end t (t.Fatal): s.err says so to later tests
		}
		s.kube, s.err = s.start(assets, crds)
	})
	if s.err != nil {
		t.Fatalf("shared kube: %v", s.err)
	}
	if started {
		t.Logf("kube (shared): etcd, kube-apiserver and %d CRDs up in %v (%s)", len(s.kube.CRDs), s.kube.StartDuration.Round(time.Millisecond), s.kube.Config.Host)
		if kcm := s.kube.kcm; kcm != nil {
			t.Logf("kube (shared): kube-controller-manager up in %v more", kcm.started.Round(time.Millisecond))
		}
	}
	return s.kube
}

func (s *Shared) start(assets string, crds []string) (*Kube, error) {
	dir, err := os.MkdirTemp("", "switchyard-kube-")
	if err != nil {
		return nil, err
	}
	s.dir = dir
	k, err := start(assets, dir, crds)
	if err != nil {
		return nil, err
	}
	if s.ControllerManager {
		if _, err := k.startControllerManager(filepath.Join(assets, controllerManagerBin), nil); err != nil {
			return nil, errors.Join(err, k.Stop())
		}
	}
	return k, nil
}

// Stop stops the shared control plane if it was started, and removes its
// directory (logs, kubeconfigs). It is idempotent.
func (s *Shared) Stop() error {
	var err error
	if s.kube != nil {
		err = s.kube.Stop()
	}
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
		s.dir = ""
	}
	return err
}

// Run runs the package's tests (m.Run) and then stops the shared control
// plane, for TestMain: os.Exit(shared.Run(m)). A failure to stop turns a
// passing run into a failing one.
func (s *Shared) Run(m *testing.M) int {
	code := m.Run()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "kubeenv: stop the shared control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
