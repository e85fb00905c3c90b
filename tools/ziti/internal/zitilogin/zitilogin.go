// Package zitilogin holds what Ralph's Go helpers (the client's dialer and the
// daemon's host) share: dying with the parent process, logging in to the
// controller without the SDK's OIDC listener, and naming why a login failed.
package zitilogin

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openziti/sdk-golang/ziti"
	"github.com/openziti/sdk-golang/ziti/edge/posture"
)

// ErrParentGone means the process that started this one died before it
// could ask to die with it; the caller should exit at once.
var ErrParentGone = errors.New("the parent process is gone")

// DieWithParent ends this process when the process that started it dies,
// however it dies: the kernel sends SIGKILL, so no handler is involved.
func DieWithParent() error {
	parent := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		return fmt.Errorf("cannot ask to die with the parent process: %w", errno)
	}
	// The parent may have died before the request above.
	if os.Getppid() != parent || parent == 1 {
		return ErrParentGone
	}
	return nil
}

// LoginFailure is a failed login with the real cause in words.
type LoginFailure struct {
	Message string
	Err     error
}

func (e *LoginFailure) Error() string { return e.Message + ": " + e.Err.Error() }
func (e *LoginFailure) Unwrap() error { return e.Err }

// Login loads an enrolled identity and logs in with it.
//
// Both connection settings are 1. Without a control connection to the router,
// a host's close of a circuit was not passed on to the dialer and a stream
// that ends by closing stalled. A single default connection keeps flow control
// in the router: with more, the SDK takes it over (listeners too:
// SdkFlowControl is switched on when MaxDefaultConnections > 1), and in this
// release that could stall the hosting side once clients aborted streams
// (both measured).
//
// The SDK's default OIDC login runs a local HTTP server on every interface
// (":0") for the length of each login; the API-session login opens none.
//
// The SDK refreshes its posture data (OS, MAC addresses) before every dial and
// every listen, and every 10 s per context, even when no posture check applies.
// Its OS lookup (gopsutil) runs lsb_release, a shell script that starts 7
// programs on Debian: about 13 ms each time, most of a new connection's cost
// through the dialer (measured). So the OS is looked up once per process,
// during the first login (a posture check on it sees the values from the
// process's start); MAC addresses stay live.
//
// A controller that takes the connection and never answers would hold the
// login for the SDK's own 10 s; `within` bounds it (0: the SDK's).
func Login(identityFile string, within time.Duration) (ziti.Context, error) {
	cfg, err := ziti.NewConfigFromFile(identityFile)
	if err != nil {
		return nil, &LoginFailure{Message: "cannot load identity " + identityFile, Err: err}
	}
	cfg.MaxControlConnections = 1
	cfg.MaxDefaultConnections = 1
	ctx, err := ziti.NewContext(cfg)
	if err != nil {
		return nil, &LoginFailure{Message: "cannot create a Ziti context", Err: err}
	}
	impl, ok := ctx.(*ziti.ContextImpl)
	if !ok {
		ctx.Close()
		return nil, &LoginFailure{Message: "unexpected Ziti context", Err: errors.New("not a *ziti.ContextImpl")}
	}
	impl.CtrlClt.PostureCache.SetOsProviderFunc(osInfo)
	go osInfo()
	impl.CtrlClt.SetUseOidc(false)
	if err := authenticate(ctx, within); err != nil {
		ctx.Close()
		return nil, &LoginFailure{Message: LoginError(cfg.ZtAPI, err), Err: err}
	}
	return ctx, nil
}

// authenticate logs in, giving up after `within` (0: no bound of ours).
func authenticate(ctx ziti.Context, within time.Duration) error {
	if within <= 0 {
		return ctx.Authenticate()
	}
	done := make(chan error, 1)
	go func() { done <- ctx.Authenticate() }()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		return fmt.Errorf("no answer to the login within %s: %w", within, os.ErrDeadlineExceeded)
	}
}

var osInfo = sync.OnceValue(posture.NewOsProvider().GetOsInfo)

// LoginError names the real cause of a failed login and what to do about it.
func LoginError(controller string, err error) string {
	var hostErr x509.HostnameError
	var authorityErr x509.UnknownAuthorityError
	var certErr *x509.CertificateInvalidError
	text := err.Error()
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(text, "connection refused"):
		return "cannot reach the controller at " + controller + ": connection refused (is the network up, and is this its address?)"
	case errors.As(err, &hostErr):
		names := append(append([]string{}, hostErr.Certificate.DNSNames...), ipStrings(hostErr.Certificate.IPAddresses)...)
		return "the controller's certificate is not valid for the name in this identity (" + hostErr.Host + "); it names " + strings.Join(names, ", ") + ": the network advertises another address, so enrol an identity for it"
	case errors.As(err, &authorityErr) || errors.As(err, &certErr):
		return "the controller at " + controller + " has a certificate this identity does not trust: it belongs to another network"
	case errors.Is(err, os.ErrDeadlineExceeded) || strings.Contains(text, "timeout") || strings.Contains(text, "deadline exceeded"):
		return "no answer from the controller at " + controller + " (is the address reachable from here?)"
	case strings.Contains(text, "UNAUTHORIZED") || strings.Contains(text, "401") || strings.Contains(text, "INVALID_AUTH") || strings.Contains(text, "certificate required"):
		return "the controller refused this identity: it was revoked, or it belongs to another network"
	default:
		return "cannot log in to the controller at " + controller
	}
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	return out
}
