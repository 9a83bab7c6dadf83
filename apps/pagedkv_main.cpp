// PLACEHOLDER: the pagedkv CLI is being written.
int main() { return 0; }
