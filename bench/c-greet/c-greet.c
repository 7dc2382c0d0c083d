/*
 * c-greet: the greeting service in plain C, the "near the limit" reference for
 * `cargo xtask bench`.
 *
 *   c-greet [--udp] [--threads N] [--quiet] [--backlog N] HOST PORT
 *
 * Port 0 picks an ephemeral port; `LISTENING <port>` is the first stdout line.
 * Every thread owns one SO_REUSEPORT socket and one epoll instance, so the kernel
 * spreads connections (or datagrams) over the threads and no state is shared.
 * TCP: accept until EAGAIN, write the 24-byte greeting, close. A short write
 * (never expected for 24 bytes on a fresh socket) finishes on EPOLLOUT.
 * UDP: every datagram is answered with the greeting, sent to its source.
 *
 * Built by xtask: cc -O2 -Wall -Wextra -Werror -o target/bench/c-greet c-greet.c -lpthread
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char GREETING[] = "Thank you for connecting";
#define GREETING_LEN (sizeof GREETING - 1)
#define MAX_EVENTS 256
/* How long a thread leaves its listener alone after running out of descriptors. */
#define EMFILE_PAUSE_MS 50

struct options {
    int udp;
    int quiet;
    int threads;
    int backlog;
    const char *host;
    const char *port;
};

static struct options opts = {0, 0, 0, 1024, NULL, NULL};

/* A connection whose greeting did not fit in one write. */
struct pending {
    int fd;
    size_t sent;
};

struct worker {
    int sock;
    int ep;
};

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void usage(void) {
    fprintf(stderr, "usage: c-greet [--udp] [--threads N] [--quiet] [--backlog N] HOST PORT\n");
    exit(2);
}

static int positive(const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > 65535)
        usage();
    return (int)v;
}

static void parse(int argc, char **argv) {
    int positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--udp") == 0) {
            opts.udp = 1;
        } else if (strcmp(a, "--quiet") == 0) {
            opts.quiet = 1;
        } else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
            opts.threads = positive(argv[++i]);
        } else if (strcmp(a, "--backlog") == 0 && i + 1 < argc) {
            opts.backlog = positive(argv[++i]);
        } else if (a[0] == '-' && a[1] == '-') {
            usage();
        } else if (positional == 0) {
            opts.host = a;
            positional++;
        } else if (positional == 1) {
            opts.port = a;
            positional++;
        } else {
            usage();
        }
    }
    if (positional != 2)
        usage();
    if (opts.threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        opts.threads = cores > 0 ? (int)cores : 1;
    }
}

/* `Got connection from ('IP', PORT)`, as the tutorial's server prints it. */
static void log_peer(const struct sockaddr_storage *addr) {
    char ip[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    printf("Got connection from ('%s', %u)\n", ip, port);
}

/* One SO_REUSEPORT socket bound to `addr`, non-blocking, listening if TCP. */
static int open_socket(const struct addrinfo *ai, const struct sockaddr *addr, socklen_t len) {
    int type = (opts.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    int fd = socket(ai->ai_family, type, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
        die("setsockopt");
    if (bind(fd, addr, len) < 0)
        die("bind");
    if (!opts.udp && listen(fd, opts.backlog) < 0)
        die("listen");
    return fd;
}

static void watch(int ep, int fd, uint32_t events, void *ptr) {
    struct epoll_event ev = {.events = events, .data.ptr = ptr};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
        die("epoll_ctl");
}

/* Sends the rest of the greeting; 1 when the connection is finished with. */
static int send_rest(struct pending *p) {
    while (p->sent < GREETING_LEN) {
        ssize_t n = send(p->fd, GREETING + p->sent, GREETING_LEN - p->sent, MSG_NOSIGNAL);
        if (n > 0) {
            p->sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return 1; /* the client went away: nothing more to do */
        }
    }
    return 1;
}

static void greet(struct worker *w, int fd) {
    struct pending first = {fd, 0};
    if (send_rest(&first)) {
        close(fd);
        return;
    }
    struct pending *p = malloc(sizeof *p);
    if (p == NULL) {
        close(fd);
        return;
    }
    *p = first;
    watch(w->ep, fd, EPOLLOUT, p);
}

/*
 * Accepts until the queue is empty. Out of descriptors, the listener is taken out
 * of the (level-triggered) epoll set for a moment instead of being retried at once:
 * the returned deadline says when to put it back (0: it is still armed).
 */
static int accept_all(struct worker *w) {
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof peer;
        int fd = accept4(w->sock, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (!opts.quiet)
                log_peer(&peer);
            greet(w, fd);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            return 0;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            if (epoll_ctl(w->ep, EPOLL_CTL_DEL, w->sock, NULL) < 0)
                die("epoll_ctl");
            return 1;
        default:
            /* ECONNABORTED, EINTR, a protocol error of one connection: try the next. */
            continue;
        }
    }
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *serve_tcp(void *arg) {
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    long long resume_at = 0; /* 0: the listener is armed */
    for (;;) {
        int timeout = -1;
        if (resume_at != 0) {
            long long left = resume_at - now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int n = epoll_wait(w->ep, events, MAX_EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        if (resume_at != 0 && now_ms() >= resume_at) {
            watch(w->ep, w->sock, EPOLLIN, NULL);
            resume_at = 0;
        }
        for (int i = 0; i < n; i++) {
            struct pending *p = events[i].data.ptr;
            if (p == NULL) {
                if (accept_all(w))
                    resume_at = now_ms() + EMFILE_PAUSE_MS;
            } else if (send_rest(p) || (events[i].events & (EPOLLERR | EPOLLHUP))) {
                close(p->fd);
                free(p);
            }
        }
    }
    return NULL;
}

static void *serve_udp(void *arg) {
    struct worker *w = arg;
    struct epoll_event events[MAX_EVENTS];
    char buf[65536];
    for (;;) {
        int n = epoll_wait(w->ep, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (;;) {
            struct sockaddr_storage peer;
            socklen_t len = sizeof peer;
            ssize_t got = recvfrom(w->sock, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                break; /* EAGAIN; an ICMP error of an earlier reply is dropped too */
            }
            if (!opts.quiet)
                log_peer(&peer);
            /* A reply the socket buffer cannot take is lost, like any datagram. */
            (void)sendto(w->sock, GREETING, GREETING_LEN, MSG_NOSIGNAL, (struct sockaddr *)&peer, len);
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    parse(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = opts.udp ? SOCK_DGRAM : SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    struct addrinfo *ai;
    int rc = getaddrinfo(opts.host, opts.port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "c-greet: %s: %s\n", opts.host, gai_strerror(rc));
        return 1;
    }

    /* The first socket settles the port (port 0: the kernel's choice); the others join it. */
    struct sockaddr_storage addr;
    socklen_t addr_len = ai->ai_addrlen;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    struct worker *workers = calloc((size_t)opts.threads, sizeof *workers);
    if (workers == NULL)
        die("calloc");
    for (int t = 0; t < opts.threads; t++) {
        workers[t].sock = open_socket(ai, (struct sockaddr *)&addr, addr_len);
        if (t == 0 && getsockname(workers[0].sock, (struct sockaddr *)&addr, &addr_len) < 0)
            die("getsockname");
        workers[t].ep = epoll_create1(EPOLL_CLOEXEC);
        if (workers[t].ep < 0)
            die("epoll_create1");
        watch(workers[t].ep, workers[t].sock, EPOLLIN, NULL);
    }
    freeaddrinfo(ai);
    unsigned port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                                     : ((struct sockaddr_in *)&addr)->sin_port);
    printf("LISTENING %u\n", port);
    fflush(stdout);

    void *(*serve)(void *) = opts.udp ? serve_udp : serve_tcp;
    for (int t = 1; t < opts.threads; t++) {
        pthread_t id;
        if (pthread_create(&id, NULL, serve, &workers[t]) != 0)
            die("pthread_create");
    }
    serve(&workers[0]);
    return 0;
}
