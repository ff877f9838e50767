//! Sets the linker flags a napi addon needs (Node's symbols are resolved when it is loaded).

fn main() {
    napi_build::setup();
}
