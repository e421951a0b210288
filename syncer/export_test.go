package syncer

import "github.com/panelsync/panelsync/models"

// SetBeforeSettle makes the engine call f inside the transaction that
// finishes each run, after its changes are applied; nil removes it.
func (e *Engine) SetBeforeSettle(f func(models.Run)) {
	if f == nil {
		e.completer.beforeSettle.Store(nil)
		return
	}
	e.completer.beforeSettle.Store(&f)
}
