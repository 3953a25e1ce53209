//! The C heaps of the providers, where the library lets us see them.
//!
//! OpenSSL: `CRYPTO_set_mem_functions` routes its `CRYPTO_malloc`,
//! `CRYPTO_realloc` and `CRYPTO_free` to hooks; ours call the C library's
//! allocator as OpenSSL would, and scan each block before `free`. It must
//! be called before OpenSSL allocates anything, so `main` calls it first.
//!
//! AWS-LC is not hooked: its own `OPENSSL_free` already wipes every block
//! it frees (it keeps the size in front of the block for that), and its
//! hook would replace that `free`, so a hooked run would measure a library
//! that does not exist. SECURITY.md says so.

/// The hooks installed: one entry per C library the build links, with
/// whether it took them.
pub fn install() -> Vec<(&'static str, Result<(), String>)> {
    vec![
        #[cfg(feature = "openssl")]
        ("openssl", openssl::install()),
    ]
}

#[cfg(feature = "openssl")]
mod openssl {
    use std::ffi::{c_char, c_int, c_void};

    use crate::scan::{scan, Heap};

    type Malloc = unsafe extern "C" fn(usize, *const c_char, c_int) -> *mut c_void;
    type Realloc = unsafe extern "C" fn(*mut c_void, usize, *const c_char, c_int) -> *mut c_void;
    type Free = unsafe extern "C" fn(*mut c_void, *const c_char, c_int);

    extern "C" {
        // libcrypto (linked through openssl-sys, which does not declare it).
        fn CRYPTO_set_mem_functions(m: Malloc, r: Realloc, f: Free) -> c_int;
        // The C library's allocator.
        fn malloc(size: usize) -> *mut c_void;
        fn free(ptr: *mut c_void);
        fn malloc_usable_size(ptr: *mut c_void) -> usize;
    }

    const HEAP: Heap = Heap::C("openssl");

    unsafe extern "C" fn hooked_malloc(size: usize, _: *const c_char, _: c_int) -> *mut c_void {
        unsafe { malloc(size) }
    }

    /// A move is an allocation, a copy and a free, so the old block is
    /// scanned as any other.
    unsafe extern "C" fn hooked_realloc(
        ptr: *mut c_void,
        size: usize,
        file: *const c_char,
        line: c_int,
    ) -> *mut c_void {
        if ptr.is_null() {
            return unsafe { malloc(size) };
        }
        let fresh = unsafe { malloc(size) };
        if !fresh.is_null() {
            unsafe {
                let old = malloc_usable_size(ptr);
                std::ptr::copy_nonoverlapping(ptr as *const u8, fresh as *mut u8, old.min(size));
                hooked_free(ptr, file, line);
            }
        }
        fresh
    }

    unsafe extern "C" fn hooked_free(ptr: *mut c_void, _: *const c_char, _: c_int) {
        if ptr.is_null() {
            return;
        }
        unsafe {
            scan(ptr as *const u8, malloc_usable_size(ptr), HEAP);
            free(ptr);
        }
    }

    pub fn install() -> Result<(), String> {
        // SAFETY: the three functions have OpenSSL's signatures and pair
        // with each other; nothing was allocated through OpenSSL yet.
        let took = unsafe { CRYPTO_set_mem_functions(hooked_malloc, hooked_realloc, hooked_free) };
        if took == 1 {
            Ok(())
        } else {
            Err("CRYPTO_set_mem_functions refused: OpenSSL allocated before main".into())
        }
    }
}
