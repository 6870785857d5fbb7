/* Opens, reads and sends a file through an io_uring (raw syscalls, no
 * liburing): argv[1] the file, argv[2] a loopback port to send it to. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static int ring_fd;
static unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;

static int submit_and_wait(struct io_uring_sqe *proto) {
    unsigned tail = *sq_tail, idx = tail & *sq_mask;
    sqes[idx] = *proto;
    sq_array[idx] = idx;
    __atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
    if (syscall(__NR_io_uring_enter, ring_fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0) {
        perror("io_uring_enter");
        exit(2);
    }
    unsigned head = __atomic_load_n(cq_head, __ATOMIC_ACQUIRE);
    if (head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
        fprintf(stderr, "no completion\n");
        exit(2);
    }
    int res = cqes[head & *cq_mask].res;
    __atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
    return res;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    ring_fd = syscall(__NR_io_uring_setup, 8, &p);
    if (ring_fd < 0) { perror("io_uring_setup"); return 2; }
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    char *sq = mmap(0, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQ_RING);
    char *cq = mmap(0, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_CQ_RING);
    sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) { perror("mmap"); return 2; }
    sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
    sq_array = (unsigned *)(sq + p.sq_off.array);
    cq_head = (unsigned *)(cq + p.cq_off.head);
    cq_tail = (unsigned *)(cq + p.cq_off.tail);
    cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
    cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);

    struct io_uring_sqe s;
    memset(&s, 0, sizeof s);
    s.opcode = IORING_OP_OPENAT;
    s.fd = AT_FDCWD;
    s.addr = (unsigned long)argv[1];
    s.open_flags = O_RDONLY;
    int fd = submit_and_wait(&s);
    if (fd < 0) { fprintf(stderr, "openat: %d\n", fd); return 1; }

    static char buf[65536];
    memset(&s, 0, sizeof s);
    s.opcode = IORING_OP_READ;
    s.fd = fd;
    s.addr = (unsigned long)buf;
    s.len = sizeof buf;
    int n = submit_and_wait(&s);
    if (n < 0) { fprintf(stderr, "read: %d\n", n); return 1; }

    int sock = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(sock, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    memset(&s, 0, sizeof s);
    s.opcode = IORING_OP_SEND;
    s.fd = sock;
    s.addr = (unsigned long)buf;
    s.len = n;
    int sent = submit_and_wait(&s);
    if (sent != n) { fprintf(stderr, "send: %d of %d\n", sent, n); return 1; }
    printf("%d\n", n);
    return 0;
}
