/* Compilation error. */
int main(void) { return x; }
