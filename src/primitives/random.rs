//! Random bytes from the kernel's entropy pool: getrandom(2), the same source as /dev/urandom.
//! Uids, tokens, generated names, ClusterIPs and NodePorts are drawn from it.

/// Fill `buf` with random bytes; false if the kernel could not (the caller decides what then).
pub fn fill(buf: &mut [u8]) -> bool {
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    n == buf.len() as isize
}

#[cfg(test)]
mod tests {
    #[test]
    fn fills_the_buffer() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        assert!(super::fill(&mut a) && super::fill(&mut b));
        assert_ne!(a, b);
    }
}
