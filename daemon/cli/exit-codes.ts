// The CLI's exit codes (README, "CLI"): stable, so scripts can branch on them.
export const EXIT_OK = 0;
/** The operation failed: the broker refused it, nothing was retained, a request got no reply. */
export const EXIT_ERROR = 1;
/** The command line was wrong. */
export const EXIT_USAGE = 2;
/** No broker answered on the socket. */
export const EXIT_UNREACHABLE = 3;
