import NIOCore

/// Runs a task's jobs on one event loop, so a request's plugin phases (async: they may read the
/// body or call out) run on the thread of the connection they serve.
///
/// Without it each request's phases would start on Swift's global pool and hop back to the loop
/// for every step: two thread handoffs per request at least, and memory allocated on one thread
/// and freed on another. A phase must not block (as in Kong, where plugins run on the worker's
/// loop); blocking work (the rate limiter's Lua functions) runs on threads of its own.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
