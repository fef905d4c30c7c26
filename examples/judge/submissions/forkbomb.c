/* A fork bomb: stopped at the PID limit, ended by the time limit. Its failing forks
   still charge kernel memory (tens of MB at 32 PIDs), so give it room: --memory 256M. */
#include <unistd.h>
int main(void) {
    for (;;) fork();
}
