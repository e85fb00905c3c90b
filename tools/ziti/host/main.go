// ralph-ziti-host: hosts a daemon's Ziti services with nothing but the
// daemon's own enrolled identity, forwarding each accepted connection to a
// Unix socket (the control API, a loop's opencode) or a port on 127.0.0.1.
// It binds nothing itself: no listening socket at all,
// and it logs in with the API-session login, so not even the SDK's OIDC
// login server (which listens on every interface) runs.
//
// Driven over stdin, one JSON object per line:
//
//	{"op":"host","key":"control","service":"ralph-control-NAME","socket":"/PATH"}
//	{"op":"host","key":"LOOP","service":"ralph-loops-NAME","terminator":"LOOP","socket":"/PATH"}
//	{"op":"host","key":"K","service":"S","port":N}  (127.0.0.1:N instead of a socket)
//	{"op":"unhost","key":"LOOP"}
//	{"op":"check","key":"K","service":"ralph-loops-NAME"}
//	{"op":"terminators","key":"K","service":"ralph-loops-NAME"}
//
// It reports on stdout, one JSON object per line: "ready" after the login,
// "hosted" once the controller has the terminator (dialable), "unhosted",
// "checked" when the identity may bind the service (check hosts nothing),
// "terminators" with the instance ids the controller lists for a service,
// "error" (with the key, when it concerns one), and "fatal" before exiting
// non-zero. Its SDK's log goes to stderr. It exits when stdin ends, on
// SIGTERM, and when its parent dies.
//
// One Ziti context (one login, one API session) per hosted key, not one for
// all. Found with the pinned ziti 1.7.2 controller: with the API-session
// login, every Bind session created after the first for the same API session
// and service is unusable. The REST handler (controller/internal/routes/
// session_router.go, Create) signs the session token with a fresh id, then
// SessionManager.Create finds the API session's existing Bind session for that
// service and returns its id instead of storing the new one; the token names
// a session that does not exist, so the router's create-terminator request is
// refused ("invalid session") and no terminator appears. Worse, the SDK's
// listener retries on the same connection and the router answers that retry
// with "bind success" from its replace-existing path, so WaitForN reports an
// established listener that the controller never got (seen in the router's
// log: "taking over terminator from existing bind"). A second
// ListenWithOptions on the same service from the same context (another
// terminator, or the same key hosted again after unhost) hits this; a fresh
// context is a fresh API session, whose first Bind session is stored. The
// OIDC login mints non-durable tokens and does not hit it, but is ruled out
// for its listener. Hence a context per key, and "hosted" is reported only
// once the controller lists the terminator.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openziti/sdk-golang/ziti"
	"github.com/openziti/sdk-golang/ziti/edge"

	"ralph-remote/ziti-build/internal/jsonlines"
	"ralph-remote/ziti-build/internal/zitilogin"
)

func reportError(key, message string) {
	fields := map[string]any{"message": message}
	if key != "" {
		fields["key"] = key
	}
	jsonlines.Report("error", fields)
}

func fatal(message string) {
	jsonlines.Report("fatal", map[string]any{"message": message})
	os.Exit(2)
}

type command struct {
	Op         string `json:"op"`
	Key        string `json:"key"`
	Service    string `json:"service"`
	Terminator string `json:"terminator"`
	Port       int    `json:"port"`
	Socket     string `json:"socket"`
}

// hosting is one hosted key: its own context (see the package comment) and
// listener.
type hosting struct {
	ctx        ziti.Context
	ln         edge.Listener
	service    string
	terminator string
	// "tcp4" to 127.0.0.1:port, or "unix" to a socket path.
	network, address string
	closing    atomic.Bool
}

func (h *hosting) close() {
	h.closing.Store(true)
	_ = h.ln.Close()
	h.ctx.Close()
}

type host struct {
	identityFile string
	// The login that "ready" reports on; it also checks a service's
	// permissions before a context is made for it.
	main ziti.Context

	lock   sync.Mutex
	hosted map[string]*hosting
	// Commands for one key run in order, by one worker per key; different
	// keys run at once (a login and a listen take a moment).
	queues map[string]chan command
}

func (h *host) dispatch(c command) {
	if c.Key == "" {
		reportError("", "a command needs a key")
		return
	}
	h.lock.Lock()
	q, ok := h.queues[c.Key]
	if !ok {
		q = make(chan command, 256)
		h.queues[c.Key] = q
		go func() {
			for c := range q {
				h.run(c)
			}
		}()
	}
	h.lock.Unlock()
	q <- c
}

func (h *host) take(key string) *hosting {
	h.lock.Lock()
	defer h.lock.Unlock()
	old := h.hosted[key]
	delete(h.hosted, key)
	return old
}

func (h *host) run(c command) {
	switch c.Op {
	case "host":
		if err := h.host(c); err != nil {
			reportError(c.Key, err.Error())
		}
	case "unhost":
		if old := h.take(c.Key); old != nil {
			old.close()
		}
		jsonlines.Report("unhosted", map[string]any{"key": c.Key})
	case "check":
		if c.Service == "" {
			reportError(c.Key, "check needs a service")
		} else if err := h.checkBind(c.Service); err != nil {
			reportError(c.Key, err.Error())
		} else {
			jsonlines.Report("checked", map[string]any{"key": c.Key})
		}
	case "terminators":
		if ids, err := h.terminatorIds(c.Service); err != nil {
			reportError(c.Key, err.Error())
		} else {
			jsonlines.Report("terminators", map[string]any{"key": c.Key, "ids": ids})
		}
	default:
		reportError(c.Key, fmt.Sprintf("unknown op %q: use host, unhost, check or terminators", c.Op))
	}
}

// terminatorIds lists the instance ids of the service's terminators, as the
// controller has them: what the daemon compares with its running loops.
func (h *host) terminatorIds(service string) ([]string, error) {
	if service == "" {
		return nil, errors.New("terminators needs a service")
	}
	terminators, _, err := h.main.GetServiceTerminators(service, 0, 500)
	if err != nil {
		return nil, fmt.Errorf("cannot list the terminators of %s: %v", service, err)
	}
	ids := []string{}
	for _, t := range terminators {
		if t.Identity != nil && *t.Identity != "" {
			ids = append(ids, *t.Identity)
		}
	}
	return ids, nil
}

// checkBind says, in words, why this identity may not bind the service.
func (h *host) checkBind(service string) error {
	svc, err := h.main.RefreshService(service)
	if err != nil {
		return fmt.Errorf("cannot look up service %s: %v", service, err)
	}
	if svc == nil {
		return fmt.Errorf("service %s is not visible to this identity: it does not exist, or no policy lets this identity bind it (a daemon may bind only its own services)", service)
	}
	for _, p := range svc.Permissions {
		if string(p) == "Bind" {
			return nil
		}
	}
	return fmt.Errorf("this identity may not bind service %s: no Bind policy names it (its policies let it only dial the service; is it a client identity?)", service)
}

func (h *host) host(c command) error {
	network, address, err := targetOf(c)
	if err != nil {
		return err
	}
	// Hosting a key again replaces what it hosted.
	if old := h.take(c.Key); old != nil {
		old.close()
	}
	if err := h.checkBind(c.Service); err != nil {
		return err
	}
	ctx, err := zitilogin.Login(h.identityFile, 0)
	if err != nil {
		return err
	}
	if _, err := ctx.RefreshService(c.Service); err != nil {
		ctx.Close()
		return fmt.Errorf("cannot look up service %s: %v", c.Service, err)
	}
	ln, err := ctx.ListenWithOptions(c.Service, &ziti.ListenOptions{
		Identity:                     c.Terminator,
		MaxTerminators:               1,
		WaitForNEstablishedListeners: 1,
		ConnectTimeout:               20 * time.Second,
	})
	if err != nil {
		ctx.Close()
		return fmt.Errorf("cannot host service %s: %v", c.Service, err)
	}
	hs := &hosting{ctx: ctx, ln: ln, service: c.Service, terminator: c.Terminator, network: network, address: address}
	if c.Terminator != "" {
		if err := awaitTerminator(ctx, c.Service, c.Terminator, 10*time.Second); err != nil {
			hs.close()
			return err
		}
	}
	h.lock.Lock()
	h.hosted[c.Key] = hs
	h.lock.Unlock()
	jsonlines.Report("hosted", map[string]any{"key": c.Key})
	go h.accept(c.Key, hs)
	go h.watch(c.Key, hs)
	return nil
}

// listsTerminator says whether the controller lists a terminator of the
// service with this instance id ("" for a hosting without one).
func listsTerminator(ctx ziti.Context, service, instance string) (bool, error) {
	terminators, _, err := ctx.GetServiceTerminators(service, 0, 500)
	if err != nil {
		return false, err
	}
	for _, t := range terminators {
		if (t.Identity == nil && instance == "") || (t.Identity != nil && *t.Identity == instance) {
			return true, nil
		}
	}
	return false, nil
}

// awaitTerminator returns once the controller lists a terminator of the
// service with this instance id: the router's word alone is not enough (see
// the package comment).
func awaitTerminator(ctx ziti.Context, service, instance string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		found, err := listsTerminator(ctx, service, instance)
		if found {
			return nil
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	if lastErr != nil {
		return fmt.Errorf("cannot host service %s as %s: the controller's terminators could not be read: %v", service, instance, lastErr)
	}
	return fmt.Errorf("cannot host service %s as %s: the router took the listener but the controller shows no such terminator after %s", service, instance, timeout)
}

// watchInterval is how often a hosting's terminator is looked for.
const watchInterval = 15 * time.Second

// watch looks for the hosting's terminator at the controller now and then.
// After the controller and router restart, the SDK's listener can give up
// binding again without its Accept returning (seen with ziti 1.7.2 and SDK
// v1.2.10): nothing would host the service again. Missing twice in a row
// (a restart takes a moment to settle), it is reported lost and freed, and
// the daemon hosts the key again. An unreachable controller proves nothing.
func (h *host) watch(key string, hs *hosting) {
	missing := 0
	for {
		time.Sleep(watchInterval)
		if hs.closing.Load() {
			return
		}
		found, err := listsTerminator(h.main, hs.service, hs.terminator)
		if err != nil || found {
			missing = 0
			continue
		}
		if missing++; missing >= 2 {
			h.lose(key, hs, fmt.Sprintf("stopped hosting service %s: the controller no longer lists its terminator", hs.service))
			return
		}
	}
}

// lose frees a hosting that was lost without being asked and reports it.
func (h *host) lose(key string, hs *hosting, message string) {
	h.lock.Lock()
	if h.hosted[key] == hs {
		delete(h.hosted, key)
	}
	h.lock.Unlock()
	hs.close()
	reportError(key, message)
}

func (h *host) accept(key string, hs *hosting) {
	for {
		conn, err := hs.ln.Accept()
		if err != nil {
			if hs.closing.Load() {
				return
			}
			// Lost without being asked (e.g. the identity lost the Bind
			// permission): report it, free the key.
			h.lose(key, hs, fmt.Sprintf("stopped hosting service %s: %v", hs.service, err))
			return
		}
		go forward(conn, hs.network, hs.address)
	}
}

// targetOf is where a hosting forwards to: a Unix socket (an absolute
// path), else a port on 127.0.0.1.
func targetOf(c command) (network, address string, err error) {
	if c.Service == "" {
		return "", "", errors.New("host needs a service")
	}
	if c.Socket != "" {
		if !strings.HasPrefix(c.Socket, "/") {
			return "", "", errors.New("host needs an absolute socket path")
		}
		return "unix", c.Socket, nil
	}
	if c.Port < 1 || c.Port > 65535 {
		return "", "", errors.New("host needs a socket path or a port between 1 and 65535")
	}
	return "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), nil
}

// forward joins an overlay connection to the hosting's target, passing each
// side's end of stream on to the other.
func forward(zconn net.Conn, network, address string) {
	defer zconn.Close()
	local, err := net.DialTimeout(network, address, 10*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ralph-ziti-host: cannot reach %s: %v\n", address, err)
		return
	}
	defer local.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(local, zconn)
		// Both *net.TCPConn and *net.UnixConn half-close.
		if cw, ok := local.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(zconn, local)
		if cw, ok := zconn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		done <- struct{}{}
	}()
	<-done
	<-done
}

func (h *host) closeAll() {
	h.lock.Lock()
	all := h.hosted
	h.hosted = map[string]*hosting{}
	h.lock.Unlock()
	for _, hs := range all {
		hs.close()
	}
	h.main.Close()
}

func main() {
	if err := zitilogin.DieWithParent(); err != nil {
		if errors.Is(err, zitilogin.ErrParentGone) {
			os.Exit(3)
		}
		fatal(err.Error())
	}
	identity := flag.String("identity", "", "the daemon's enrolled identity file (JSON)")
	flag.Parse()
	if *identity == "" {
		flag.Usage()
		os.Exit(64)
	}
	ctx, err := zitilogin.Login(*identity, 0)
	if err != nil {
		fatal(err.Error())
	}
	h := &host{identityFile: *identity, main: ctx, hosted: map[string]*hosting{}, queues: map[string]chan command{}}
	jsonlines.Report("ready", map[string]any{})

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		h.closeAll()
		os.Exit(0)
	}()

	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 64*1024), 1024*1024)
	for lines.Scan() {
		text := strings.TrimSpace(lines.Text())
		if text == "" {
			continue
		}
		var c command
		if err := json.Unmarshal([]byte(text), &c); err != nil {
			reportError("", "cannot read command: "+err.Error())
			continue
		}
		h.dispatch(c)
	}
	// The parent closed stdin (or died): nothing more to host.
	h.closeAll()
}
