#include <cstdio>
int main() { std::puts("myelin"); return 0; }
