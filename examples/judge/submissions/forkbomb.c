/* A fork bomb: stopped at the PID limit, ended by the time limit. */
#include <unistd.h>
int main(void) {
    for (;;) fork();
}
