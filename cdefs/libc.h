/* pyvfio cdefs: the libc functions pyvfio calls through cffi (ABI mode).
 * ioctl is variadic: every argument after the request is passed as typed cdata. */
int ioctl(int fd, unsigned long request, ...);
