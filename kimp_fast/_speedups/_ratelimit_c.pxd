# Augmenting declarations: Cython compiles _ratelimit_py.py a second time as
# kimp_fast._speedups._ratelimit_c with these C types (STYLE R4, aiohttp reader_c.pxd),
# so the two rate-limiter twins are one source and cannot drift apart.
# Arguments that come from callers stay Python objects: the source's own checks then
# raise the same errors in both twins.

cimport cython


@cython.final
cdef class _Bucket:
    cdef readonly str name
    cdef readonly long long capacity
    cdef readonly double period
    cdef readonly long long reserve
    cdef readonly long long used
    cdef readonly object entries
    cdef public double blocked_until

    cpdef expire(self, double now)
    cpdef double wait_for(self, double now, long long cost, bint reserved) except? -1.0
    cpdef consume(self, double now, long long cost)
    cpdef raise_used_to(self, double now, long long server_used)


@cython.final
cdef class RateLimiter:
    cdef str _exchange
    cdef object _clock
    cdef double _reserved_share
    cdef dict _buckets
    cdef dict _groups
    cdef double _blocked_until
    cdef double _last_block_end
    cdef long long _streak_429
    cdef long long _streak_418

    cdef list _costs(self, object group)
    cdef _apply_remaining_req(self, double now, object value, object group)
