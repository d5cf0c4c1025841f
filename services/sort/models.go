package sort

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/toutiao-reco/toutiao-reco/pkg/model"
)

// Models holds the CTR models of a directory, one file per model
// (model.Path), and reloads a file when it changes, so a new model goes live without
// a restart. A file that fails to load keeps the model it would have replaced.
type Models struct {
	dir string
	log *zap.Logger

	mu     sync.RWMutex
	models map[int32]loaded
}

type loaded struct {
	model   *model.Model
	modTime time.Time
	size    int64
}

// LoadModels loads every model file in dir. A missing directory is not an error:
// the service ranks nothing until models appear.
func LoadModels(dir string, log *zap.Logger) *Models {
	m := &Models{dir: dir, log: log, models: map[int32]loaded{}}
	m.Reload()
	return m
}

// Get returns the model with id, or nil.
func (m *Models) Get(id int32) *model.Model {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.models[id].model
}

// Reload loads the files that are new or changed since the last look.
func (m *Models) Reload() {
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		m.log.Warn("model directory unreadable", zap.String("dir", m.dir), zap.Error(err))
		return
	}
	for _, e := range entries {
		id, ok := model.FileID(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		m.mu.RLock()
		cur := m.models[id]
		m.mu.RUnlock()
		if cur.model != nil && cur.modTime.Equal(info.ModTime()) && cur.size == info.Size() {
			continue
		}
		path := model.Path(m.dir, id)
		mod, err := model.Load(path)
		if err == nil && mod.ID != id {
			err = fmt.Errorf("file %s holds model %d", path, mod.ID)
		}
		if err != nil {
			m.log.Error("model not loaded, keeping the previous one", zap.String("path", path), zap.Error(err))
			continue
		}
		m.mu.Lock()
		m.models[id] = loaded{model: mod, modTime: info.ModTime(), size: info.Size()}
		m.mu.Unlock()
		m.log.Info("model loaded", zap.Int32("model", mod.ID), zap.String("kind", mod.Kind), zap.String("version", mod.Version))
	}
}

// Watch reloads every interval until ctx ends.
func (m *Models) Watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.Reload()
		}
	}
}
