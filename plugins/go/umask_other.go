//go:build !unix

package sdk

// restrictUmask does nothing where there is no umask; listenUnix still chmods.
func restrictUmask() func() { return func() {} }
