"""HTTP: transport with deadlines and a size cap, the one retry loop, the rate limiter, auth, URL checks."""
