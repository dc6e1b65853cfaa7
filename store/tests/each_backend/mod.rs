//! The macro that runs each suite of this directory: every test of a list against every
//! backend of a list.

/// `each_backend! { backends: [sqlite, postgres], tests: [a, b] }` makes a module per backend
/// holding one `#[tokio::test]` per test, each calling `test(backend().await)`. Both lists are
/// written once, so no backend can miss a test; a test function left out of the list is
/// never called, which the build refuses (`dead_code` under `-D warnings`).
macro_rules! each_backend {
    (backends: $backends:tt, tests: [$($test:ident),* $(,)?] $(,)?) => {
        each_backend!(@each $backends [$($test),*]);
    };
    (@each [$($backend:ident),* $(,)?] $tests:tt) => {
        $(each_backend!(@backend $backend $tests);)*
    };
    (@backend $backend:ident [$($test:ident),*]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::$backend().await).await;
                }
            )*
        }
    };
}
