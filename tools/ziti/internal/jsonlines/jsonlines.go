// Package jsonlines is the stdout protocol of Ralph's Go helpers: one JSON
// object per line, with its "event", written whole even from many goroutines.
package jsonlines

import (
	"encoding/json"
	"os"
	"sync"
)

var (
	out  = json.NewEncoder(os.Stdout)
	lock sync.Mutex
)

// Report writes one event line.
func Report(event string, fields map[string]any) {
	fields["event"] = event
	lock.Lock()
	defer lock.Unlock()
	_ = out.Encode(fields)
}
