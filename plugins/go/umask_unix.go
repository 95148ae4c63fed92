//go:build unix

package sdk

import "syscall"

// restrictUmask makes files created from now on mode 0600 at most (the socket),
// and returns the function that restores the previous umask.
func restrictUmask() func() {
	old := syscall.Umask(0o177)
	return func() { syscall.Umask(old) }
}
