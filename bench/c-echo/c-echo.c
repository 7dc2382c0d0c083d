/*
 * A bench peer: an echo server in C on epoll, the floor the instruction counts of
 * `cargo xtask bench ir` are read against. One thread, edge-triggered, reads until EAGAIN
 * and writes each read straight back; output the socket does not take waits in a buffer
 * per connection (and reading that connection stops until it drains). Not part of the
 * product.
 *
 *   c-echo [ADDR]     ADDR is 127.0.0.1:PORT (default 127.0.0.1:0); prints
 *                     `Listening on 127.0.0.1:PORT` first
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536
#define CHUNK 65536

/* Output a connection's socket did not take yet. */
struct pending {
    char *data;
    size_t len;
};

static struct pending waiting[MAX_FDS];

static void drop_conn(int fd) {
    free(waiting[fd].data);
    waiting[fd].data = NULL;
    waiting[fd].len = 0;
    close(fd);
}

/* Writes what waits; returns 0 when all of it went, 1 when some still waits, -1 on error. */
static int flush_pending(int fd) {
    struct pending *p = &waiting[fd];
    while (p->len > 0) {
        ssize_t n = write(fd, p->data, p->len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 1 : -1;
        }
        memmove(p->data, p->data + n, p->len - (size_t)n);
        p->len -= (size_t)n;
    }
    return 0;
}

/* Echoes what the peer sent until EAGAIN; returns -1 when the connection is done. */
static int echo(int fd, char *buf) {
    for (;;) {
        if (waiting[fd].len > 0) {
            int r = flush_pending(fd);
            if (r != 0) return r < 0 ? -1 : 0; /* reading waits for the drain */
        }
        ssize_t n = read(fd, buf, CHUNK);
        if (n == 0) return -1;
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN ? 0 : -1;
        }
        ssize_t w = write(fd, buf, (size_t)n);
        if (w < 0 && errno != EAGAIN && errno != EINTR) return -1;
        if (w < 0) w = 0;
        if (w < n) {
            struct pending *p = &waiting[fd];
            char *grown = realloc(p->data, p->len + (size_t)(n - w));
            if (!grown) return -1;
            memcpy(grown + p->len, buf + w, (size_t)(n - w));
            p->data = grown;
            p->len += (size_t)(n - w);
        }
    }
}

int main(int argc, char **argv) {
    const char *spec = argc > 1 ? argv[1] : "127.0.0.1:0";
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host) {
        fprintf(stderr, "c-echo: expected HOST:PORT, got %s\n", spec);
        return 2;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "c-echo: not an IPv4 address: %s\n", host);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        perror("c-echo: listen");
        return 1;
    }
    socklen_t len = sizeof addr;
    getsockname(lfd, (struct sockaddr *)&addr, &len);
    printf("Listening on %s:%d\n", host, ntohs(addr.sin_port));
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static char buf[CHUNK];
    struct epoll_event events[1024];
    for (;;) {
        int n = epoll_wait(ep, events, 1024, -1);
        if (n < 0 && errno != EINTR) return 1;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0) break; /* EAGAIN (this benchmark never runs out of descriptors) */
                    if (c >= MAX_FDS) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
            } else if (echo(fd, buf) < 0) {
                drop_conn(fd);
            }
        }
    }
}
